namespace CloudArchive.Native;

/// <summary>
/// A read stream that refuses to yield more than <paramref name="limit"/> bytes: decompressing what the store
/// holds never produces more than was recorded, however small the object that inflates. One byte past the
/// limit raises <see cref="InvalidDataException"/> (a corrupt object to the caller).
/// </summary>
public sealed class BoundedReadStream(Stream inner, long limit, string what) : ReadOnlyStream
{
    private long _read;

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        // Ask for one byte more than may come, so an over-long stream is seen at the limit, not after it.
        var n = inner.Read(buffer[..(int)Math.Min(buffer.Length, limit - _read + 1)]);
        return Count(n);
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        var n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, limit - _read + 1)], ct).ConfigureAwait(false);
        return Count(n);
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    private int Count(int n)
    {
        _read += n;
        if (_read > limit) throw TooLong(what, limit);
        return n;
    }

    /// <summary>The one message for content past its bound.</summary>
    public static InvalidDataException TooLong(string what, long limit) =>
        new($"{what} decodes to more than its {limit} recorded bytes");

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
