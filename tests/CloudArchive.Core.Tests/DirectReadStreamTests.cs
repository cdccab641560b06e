using CloudArchive.Native;

namespace CloudArchive.Core.Tests;

/// <summary>Reads past the page cache: every byte as the file holds it, up to the size the backup's scan saw.</summary>
public sealed class DirectReadStreamTests : IDisposable
{
    // Not /tmp's tmpfs, where there is one: the test is about a disk file system that takes O_DIRECT.
    private readonly string _dir = Directory.CreateTempSubdirectory("direct-reader-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<byte[]> FileOfAsync(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        await File.WriteAllBytesAsync(Path.Combine(_dir, "file"), bytes);
        return bytes;
    }

    private static byte[] ReadAll(Stream stream, int chunk)
    {
        var all = new MemoryStream();
        var buffer = new byte[chunk];
        int n;
        while ((n = stream.Read(buffer)) > 0) all.Write(buffer, 0, n);
        return all.ToArray();
    }

    [Theory]
    [InlineData(1 << 20, 8192)]              // one chunk, read block by block
    [InlineData((9 << 20) + 8192, 65536)]   // several chunks and a short last one: the reads ahead and the end
    [InlineData(4 << 20, 1 << 20)]           // exactly two chunks
    public async Task EveryByteIsReadAsTheFileHoldsIt(int size, int chunk)
    {
        var expected = await FileOfAsync(size, size);
        var path = Path.Combine(_dir, "file");
        using var buffered = File.OpenHandle(path);

        using var direct = DirectReadStream.TryOpen(path, buffered, size);
        Assert.NotNull(direct); // this file system takes O_DIRECT: the test covers that path, not only the fallback
        Assert.Equal(expected, ReadAll(direct, chunk));
    }

    [Fact]
    public async Task AFileThatGrewSinceTheScanIsReadOnlyToTheSizeTheScanSaw()
    {
        var expected = await FileOfAsync(6 << 20, 5);
        var path = Path.Combine(_dir, "file");
        using var buffered = File.OpenHandle(path);
        const int seen = (3 << 20) + 8192;

        using var direct = DirectReadStream.TryOpen(path, buffered, seen)!;
        Assert.Equal(expected.AsSpan(0, seen).ToArray(), ReadAll(direct, 8192));
    }

    [Fact]
    public async Task AFileThatShrankSinceTheScanEndsWhereItEndsNow()
    {
        var expected = await FileOfAsync((5 << 20) + 8192, 7);
        var path = Path.Combine(_dir, "file");
        using var buffered = File.OpenHandle(path);

        // The backup's tar entry then pads with zeros (SnapshotReadStream); the reader itself never makes bytes up.
        using var direct = DirectReadStream.TryOpen(path, buffered, 8 << 20)!;
        Assert.Equal(expected, ReadAll(direct, 1 << 20));
    }

    [Fact]
    public void AFileGoneBeforeItsDirectOpenIsLeftToTheHandleAlreadyOpen()
    {
        var path = Path.Combine(_dir, "gone");
        File.WriteAllBytes(path, new byte[8192]);
        using var buffered = File.OpenHandle(path);
        File.Delete(path);

        Assert.Null(DirectReadStream.TryOpen(path, buffered, 8192));
    }
}
