using CloudArchive.Storage.Azure;
using CloudArchive.Storage.S3;

namespace CloudArchive.Storage.Tests;

/// <summary>Part sizes of streamed uploads: small for small objects, and room within each service's part limit for a dump of terabytes.</summary>
public sealed class PartedUploadTests
{
    [Fact]
    public void SmallObjectsUseEightMiBParts()
    {
        Assert.Equal(8 << 20, PartedUpload.PartSizeOf(1, S3ObjectStore.PartsPerStep));
        Assert.Equal(8 << 20, PartedUpload.PartSizeOf(1000, S3ObjectStore.PartsPerStep));
        Assert.Equal(16 << 20, PartedUpload.PartSizeOf(1001, S3ObjectStore.PartsPerStep));
        Assert.Equal(8 << 20, PartedUpload.PartSizeOf(5000, AzureBlobObjectStore.BlocksPerStep));
    }

    [Theory]
    [InlineData(S3ObjectStore.MaxParts, S3ObjectStore.PartsPerStep, 3_900L << 30)]
    [InlineData(AzureBlobObjectStore.MaxBlocks, AzureBlobObjectStore.BlocksPerStep, 19_000L << 30)]
    public void TheServicesPartLimitHoldsTerabytesInPartsItAccepts(int maxParts, int perStep, long atLeast)
    {
        for (var n = 1; n <= maxParts; n++)
        {
            var size = PartedUpload.PartSizeOf(n, perStep);
            Assert.InRange(size, 5 << 20, 1 << 30);   // S3: at least 5 MiB (but the last); both: at most 4 GiB; an array here at most 1 GiB
            Assert.True(n == 1 || size >= PartedUpload.PartSizeOf(n - 1, perStep));
        }
        Assert.True(PartedUpload.Capacity(maxParts, perStep) > atLeast, $"{PartedUpload.Capacity(maxParts, perStep) >> 30} GiB");
    }

    [Fact]
    public async Task EveryPartIsUploadedInOrderWithItsBytesAndNoMoreThanTwoAreHeld()
    {
        var data = new byte[(8 << 20) * 2 + 12345];
        new Random(7).NextBytes(data);
        using var source = new MemoryStream(data);
        var first = System.Buffers.ArrayPool<byte>.Shared.Rent(PartedUpload.FirstPartSize);
        Assert.Equal(PartedUpload.FirstPartSize, source.Read(first, 0, PartedUpload.FirstPartSize));
        var held = 0;
        var most = 0;
        var received = new List<(int Number, byte[] Bytes)>();
        var parts = await PartedUpload.RunAsync(first, source, 1000, 10, "test", async (number, buffer, length) =>
        {
            most = Math.Max(most, Interlocked.Increment(ref held));
            await Task.Delay(20);
            lock (received) received.Add((number, buffer.AsSpan(0, length).ToArray()));
            Interlocked.Decrement(ref held);
            return number;
        }, CancellationToken.None);
        Assert.Equal([1, 2, 3], parts);
        Assert.Equal(data, received.OrderBy(r => r.Number).SelectMany(r => r.Bytes).ToArray());
        Assert.InRange(most, 1, 2);
    }

    [Fact]
    public async Task AStreamBeyondThePartLimitIsRefusedInOneLine()
    {
        using var source = new MemoryStream(new byte[(8 << 20) * 3]);
        var first = new byte[PartedUpload.FirstPartSize];
        source.ReadExactly(first);
        var e = await Assert.ThrowsAsync<CloudArchive.Core.CloudArchiveException>(() =>
            PartedUpload.RunAsync(first, source, 1000, 2, "writing dumps/x", (n, _, _) => Task.FromResult(n), CancellationToken.None));
        Assert.Equal(CloudArchive.Core.ExitCode.InvalidInput, e.ExitCode);
        Assert.StartsWith("writing dumps/x: the object is larger than the store takes in one upload (2 parts", e.Message);
    }
}
