using System.Diagnostics;
using CloudArchive.Native;
using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

/// <summary>The path wal-push and wal-fetch take with libzstd: frames side by side, SHA-256 beside them.</summary>
public sealed class SegmentCodecTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("segment-codec-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Segment(int length, int seed)
    {
        // WAL-like: runs of text, zero-filled stretches and random bytes, so frames compress differently.
        var random = new Random(seed);
        var bytes = new byte[length];
        for (var at = 0; at < length;)
        {
            var run = Math.Min(length - at, random.Next(1 << 10, 64 << 10));
            switch (random.Next(3))
            {
                case 0: random.NextBytes(bytes.AsSpan(at, run)); break;
                case 1: break;
                default: Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat($"insert {at} checkpoint ", run / 20 + 1)).AsSpan(0, run), bytes.AsSpan(at, run)); break;
            }
            at += run;
        }
        return bytes;
    }

    private static (byte[] Compressed, ContentDigest Digest) Compress(byte[] content, int workers)
    {
        using var input = new NativeBuffer(content.Length);
        content.CopyTo(input.GetSpan());
        using var output = new NativeBuffer(SegmentCodec.Bound(content.Length));
        var (digest, length) = SegmentCodec.Compress(input, content.Length, output, 1, workers);
        return (output.GetSpan()[..length].ToArray(), digest);
    }

    private ContentDigest Decompress(byte[] compressed, string file, long maxBytes = 1L << 30)
    {
        using var handle = File.OpenHandle(file, FileMode.Create, FileAccess.Write);
        return SegmentCodec.Decompress(new MemoryStream(compressed), handle, maxBytes);
    }

    [Theory]
    [InlineData(16 << 20, 1)]
    [InlineData(16 << 20, 2)]
    [InlineData((16 << 20) + 12345, 3)] // a short last frame
    public void SegmentsRoundTripThroughFramesWithTheirChecksum(int length, int workers)
    {
        var content = Segment(length, length + workers);
        var (compressed, pushed) = Compress(content, workers);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), pushed.Sha256);
        Assert.Equal(length, pushed.Length);
        Assert.True(compressed.Length < length, "the segment did not compress");

        var file = Path.Combine(_dir, "restored");
        var fetched = Decompress(compressed, file);
        Assert.Equal(pushed, fetched);
        Assert.Equal(content, File.ReadAllBytes(file));
    }

    [Fact]
    public void TheFramesAreOneOrdinaryZstdStream()
    {
        // Older readers, the streaming path and the zstd command all read the concatenated frames as one content.
        var content = Segment(16 << 20, 7);
        var (compressed, _) = Compress(content, 2);
        var file = Path.Combine(_dir, "segment.zst");
        File.WriteAllBytes(file, compressed);
        using var zstd = Process.Start(new ProcessStartInfo("zstd", ["-d", "-c", "-q", file]) { RedirectStandardOutput = true })!;
        using var decoded = new MemoryStream();
        zstd.StandardOutput.BaseStream.CopyTo(decoded);
        zstd.WaitForExit();
        Assert.Equal(0, zstd.ExitCode);
        Assert.Equal(content, decoded.ToArray());
    }

    [Fact]
    public async Task ObjectsWrittenAsOneFrameDecodeTheSame()
    {
        // Segments archived before frames (and small files) are one frame of the streaming compressor.
        var content = Segment(16 << 20, 3);
        using var single = new MemoryStream();
        var pushed = await ZstdPipeline.CompressAsync(new MemoryStream(content), single, 1, CancellationToken.None, content.Length);
        var file = Path.Combine(_dir, "single");
        Assert.Equal(pushed, Decompress(single.ToArray(), file));
        Assert.Equal(content, File.ReadAllBytes(file));
    }

    [Fact]
    public void ADamagedFrameIsAnError()
    {
        var content = Segment(16 << 20, 11);
        var (compressed, _) = Compress(content, 2);
        compressed[compressed.Length / 2] ^= 0x5A;
        compressed[compressed.Length / 2 + 1] ^= 0xA5;
        var file = Path.Combine(_dir, "damaged");
        // Either zstd refuses the frame or the content comes out different: never the original checksum.
        try
        {
            var digest = Decompress(compressed, file);
            Assert.NotEqual(Convert.ToHexStringLower(SHA256.HashData(content)), digest.Sha256);
        }
        catch (InvalidDataException)
        {
        }
    }

    [Fact]
    public void ATruncatedObjectIsAnError()
    {
        var content = Segment(16 << 20, 9);
        var (compressed, _) = Compress(content, 2);
        Assert.Throws<EndOfStreamException>(() => Decompress(compressed[..(compressed.Length - 100)], Path.Combine(_dir, "cut")));
    }

    [Fact]
    public void AFullDiskIsAWriteFailureNotACorruptObject()
    {
        // wal-fetch tells "cannot write %p" apart from a damaged or unreachable archive by this type.
        var (compressed, _) = Compress(Segment(8 << 20, 13), 2);
        using var full = File.OpenHandle("/dev/full", FileMode.Open, FileAccess.Write);
        var e = Assert.Throws<OutputWriteException>(() => SegmentCodec.Decompress(new MemoryStream(compressed), full, 1L << 30));
        Assert.Contains("space", e.Reason, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("/dev/full", e.Reason); // wal-fetch names %p, not its temp file
    }

    [Fact]
    public void ASegmentThatInflatesPastItsRecordedSizeIsRefusedBeforeItIsWritten()
    {
        var (compressed, _) = Compress(new byte[32 << 20], 2);
        var file = Path.Combine(_dir, "planted");

        var e = Assert.Throws<InvalidDataException>(() => Decompress(compressed, file, maxBytes: 16 << 20));

        Assert.Contains("more than its 16777216 recorded bytes", e.Message);
        Assert.True(new FileInfo(file).Length <= 16 << 20);
    }
}
