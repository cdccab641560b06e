using System.Security.Cryptography;

namespace CloudArchive.Storage.Tests;

/// <summary>A forward-only stream of deterministic bytes that hashes what it hands out: big payloads without big buffers.</summary>
public sealed class GeneratedStream(long length, int seed) : Stream
{
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly byte[] _block = MakeBlock(seed);
    private long _position;
    private string? _hash;

    public string Sha256 => _hash ??= Convert.ToHexStringLower(_sha.GetHashAndReset());

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = (int)Math.Min(buffer.Length, length - _position);
        for (var done = 0; done < n;)
        {
            var at = (int)((_position + done) % _block.Length);
            var chunk = Math.Min(n - done, _block.Length - at);
            _block.AsSpan(at, chunk).CopyTo(buffer[done..]);
            done += chunk;
        }
        _sha.AppendData(buffer[..n]);
        _position += n;
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => ValueTask.FromResult(Read(buffer.Span));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => Task.FromResult(Read(buffer, offset, count));

    private static byte[] MakeBlock(int seed)
    {
        var block = new byte[1 << 20 | 7]; // odd length: the pattern does not line up with part boundaries
        new Random(seed).NextBytes(block);
        return block;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _sha.Dispose();
        base.Dispose(disposing);
    }
}
