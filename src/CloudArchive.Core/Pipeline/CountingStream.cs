using CloudArchive.Native;

namespace CloudArchive.Core.Pipeline;

/// <summary>A write-only pass-through that counts the bytes written: the stored size of a streamed object.</summary>
public sealed class CountingStream(Stream inner) : WriteOnlyStream
{
    /// <summary>Bytes written so far.</summary>
    public long Count { get; private set; }

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) { inner.Write(buffer, offset, count); Count += count; }
    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Count += buffer.Length; }
    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        await inner.WriteAsync(buffer, ct).ConfigureAwait(false);
        Count += buffer.Length;
    }
    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();
    /// <inheritdoc />
    public override void Flush() => inner.Flush();
    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
    /// <inheritdoc />
    public override long Position { get => Count; set => throw new NotSupportedException(); }
}
