using System.Security.Cryptography;
using CloudArchive.Native;
using System.Text;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

public sealed class ZstdPipelineTests
{
    private static readonly byte[] ZstdMagic = [0x28, 0xB5, 0x2F, 0xFD];

    private static byte[] Content(int length, int seed)
    {
        var words = new[] { "insert", "update", "delete", "commit", "heap", "btree", "xlog", "checkpoint", "vacuum", "tuple", "page", "lsn" };
        var random = new Random(seed);
        var text = new StringBuilder(length + 16);
        while (text.Length < length) text.Append(words[random.Next(words.Length)]).Append(' ').Append(random.Next(1000)).Append('\n');
        return Encoding.ASCII.GetBytes(text.ToString(0, length));
    }

    private static async Task<(byte[] Compressed, ContentDigest Digest)> CompressAsync(byte[] content, int level = 3, long pledged = -1)
    {
        using var output = new MemoryStream();
        var digest = await ZstdPipeline.CompressAsync(new MemoryStream(content), output, level, CancellationToken.None, pledged);
        return (output.ToArray(), digest);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(256 * 1024)]          // exactly one chunk
    [InlineData(3 * 1024 * 1024 + 7)] // several chunks and a remainder
    public async Task RoundTripsWithEqualChecksums(int length)
    {
        var content = Content(length, length);
        var (compressed, pushed) = await CompressAsync(content, pledged: length);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), pushed.Sha256);
        Assert.Equal(length, pushed.Length);
        Assert.Equal(ZstdMagic, compressed.AsSpan(0, 4).ToArray());

        using var restored = new MemoryStream();
        var fetched = await ZstdPipeline.DecompressAsync(new MemoryStream(compressed), restored, "test object", 1L << 30, CancellationToken.None);
        Assert.Equal(pushed, fetched);
        Assert.Equal(content, restored.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task FramesFromTheSystemLibzstdDecodeWithTheZstdCommand(int workers)
    {
        // The fast path: infra/install.sh installs libzstd1 (and the zstd command) and the compressor must use it.
        Assert.True(SegmentCodec.Available, "libzstd.so.1 is not loadable: compression would fall back to the slower managed port");
        var content = Content(5 * 1024 * 1024 + 3, workers);
        using var output = new MemoryStream();
        await ZstdPipeline.CompressAsync(new MemoryStream(content), output, 1, CancellationToken.None, content.Length, workers);
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(file, output.ToArray());
            var start = new System.Diagnostics.ProcessStartInfo("zstd", ["-d", "-c", "-q", file]) { RedirectStandardOutput = true };
            using var zstd = System.Diagnostics.Process.Start(start)!;
            using var decoded = new MemoryStream();
            await zstd.StandardOutput.BaseStream.CopyToAsync(decoded);
            await zstd.WaitForExitAsync();
            Assert.Equal(0, zstd.ExitCode);
            Assert.Equal(content, decoded.ToArray());
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// Compression contexts are reused from one stream to the next (a backup's bundles): each stream gets its own level,
    /// worker count and pledged size whatever the context did before, and one abandoned mid-frame (its output failed)
    /// never passes a half-written session on.
    /// </summary>
    [Fact]
    public async Task ReusedContextsCompressEachStreamWithItsOwnSettingsAndAnAbandonedOneIsNotReused()
    {
        Assert.True(SegmentCodec.Available, "libzstd.so.1 is not loadable");
        var settings = new (int Level, int Workers, bool Pledge)[] { (1, 2, false), (19, 1, true), (3, 2, true), (1, 1, false), (1, 2, false) };
        for (var round = 0; round < 2; round++)
        {
            // One stream dies mid-frame: its output refuses the bytes.
            await Assert.ThrowsAnyAsync<IOException>(async () =>
            {
                await using var broken = new ZstdCompressStream(new FailingStream(), 1, workers: 2, leaveOpen: true);
                await broken.WriteAsync(Content(4 << 20, 99));
            });
            foreach (var (level, workers, pledge) in settings)
            {
                var content = Content(3 * 1024 * 1024 + level, level * 10 + workers);
                using var output = new MemoryStream();
                await using (var zstd = new ZstdCompressStream(output, level, workers, pledge ? content.Length : -1, leaveOpen: true))
                    await zstd.WriteAsync(content);
                await using var decoded = ZstdPipeline.OpenDecompressor(new MemoryStream(output.ToArray()));
                using var back = new MemoryStream();
                await decoded.CopyToAsync(back);
                Assert.Equal(content, back.ToArray());
            }
        }
    }

    private sealed class FailingStream : MemoryStream
    {
        public override void Write(ReadOnlySpan<byte> buffer) => throw new IOException("no space left");
        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("no space left");
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) => throw new IOException("no space left");
    }

    [Fact]
    public async Task CompressesCompressibleContent()
    {
        var content = Content(1024 * 1024, 1);
        var (fast, _) = await CompressAsync(content, level: 1);
        var (strong, _) = await CompressAsync(content, level: 19);
        Assert.True(fast.Length < content.Length / 2, $"level 1: {fast.Length} bytes");
        Assert.True(strong.Length < fast.Length, $"level 19 {strong.Length} bytes, level 1 {fast.Length} bytes");
    }

    [Fact]
    public async Task AFlippedByteIsCaught()
    {
        var content = Content(1024 * 1024, 2);
        var (compressed, pushed) = await CompressAsync(content);
        compressed[compressed.Length / 2] ^= 0x5A;

        // Either the stream no longer decodes, or it decodes to other bytes whose checksum differs.
        try
        {
            var fetched = await ZstdPipeline.DecompressAsync(new MemoryStream(compressed), Stream.Null, "test object", 1L << 30, CancellationToken.None);
            Assert.NotEqual(pushed.Sha256, fetched.Sha256);
        }
        catch (CorruptObjectException e)
        {
            Assert.Equal(ExitCode.Corrupt, e.ExitCode);
            Assert.Contains("test object", e.Message);
        }
    }

    [Fact]
    public async Task NotZstdRaisesCorruptObject()
    {
        var garbage = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("this is not a zstd frame ", 100)));
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() =>
            ZstdPipeline.DecompressAsync(new MemoryStream(garbage), Stream.Null, "wal/00000001/x.zst in file:///s", 1L << 30, CancellationToken.None));
        Assert.Equal(ExitCode.Corrupt, e.ExitCode);
        Assert.Contains("wal/00000001/x.zst in file:///s", e.Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.99)]
    [InlineData(0.0001)]
    public async Task TruncatedStreamRaisesCorruptObject(double keep)
    {
        var (compressed, _) = await CompressAsync(Content(1024 * 1024, 3));
        var truncated = compressed.AsSpan(0, Math.Max(1, (int)(compressed.Length * keep))).ToArray();
        await Assert.ThrowsAsync<CorruptObjectException>(() =>
            ZstdPipeline.DecompressAsync(new MemoryStream(truncated), Stream.Null, "test object", 1L << 30, CancellationToken.None));
    }

    [Fact]
    public async Task TrailingGarbageRaisesCorruptObject()
    {
        var (compressed, _) = await CompressAsync(Content(100_000, 4));
        var longer = compressed.Concat(Encoding.ASCII.GetBytes("trailing bytes that are not a frame")).ToArray();
        await Assert.ThrowsAsync<CorruptObjectException>(() =>
            ZstdPipeline.DecompressAsync(new MemoryStream(longer), Stream.Null, "test object", 1L << 30, CancellationToken.None));
    }

    [Fact]
    public async Task ContentPastTheRecordedSizeIsCorruptAndStopsThere()
    {
        // A small object that inflates: 64 MiB of zeros is a few KiB of zstd.
        var (compressed, _) = await CompressAsync(new byte[64 << 20]);
        Assert.True(compressed.Length < 64 << 10);
        var written = new MemoryStream();

        var e = await Assert.ThrowsAsync<CorruptObjectException>(() =>
            ZstdPipeline.DecompressAsync(new MemoryStream(compressed), written, "planted.zst", 1 << 20, CancellationToken.None));

        Assert.Contains("more than its 1048576 recorded bytes", e.Message);
        Assert.True(written.Length <= 1 << 20, $"{written.Length} bytes were written past the bound");
    }

    [Fact]
    public async Task ContentOfExactlyTheRecordedSizeDecodes()
    {
        var content = Content(300_000, 8);
        var (compressed, _) = await CompressAsync(content);
        var digest = await ZstdPipeline.DecompressAsync(new MemoryStream(compressed), Stream.Null, "x", content.Length, CancellationToken.None);
        Assert.Equal(content.Length, digest.Length);
    }
}
