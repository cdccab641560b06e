using CloudArchive.Native;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// A read-only stream that produces its bytes a chunk at a time (<see cref="NextChunkAsync"/>), for the two ends of
/// <see cref="ObjectEnvelope"/>. Each chunk knows whether it is the last one by reading one byte ahead of it.
/// </summary>
public abstract class ChunkedReadStream : ReadOnlyStream
{
    private ReadOnlyMemory<byte> _pending;
    private bool _done;

    /// <summary>Bytes handed out since the start.</summary>
    protected long Emitted { get; private set; }

    /// <summary>Nothing is waiting to be handed out and the stream has not ended: the next read needs a new chunk.</summary>
    protected bool NeedsChunk => _pending.IsEmpty && !_done;

    /// <summary>A chunk was produced straight into the reader's buffer: count it, and end the stream after the last.</summary>
    protected void HandedOutDirectly(int count, bool last)
    {
        Emitted += count;
        _done = last;
    }

    /// <summary>Produces the next chunk with <see cref="SetChunk"/>; <paramref name="useAsync"/> false from the synchronous read.</summary>
    protected abstract ValueTask NextChunkAsync(bool useAsync, CancellationToken ct);

    /// <summary>What the next reads hand out; <paramref name="last"/> ends the stream after it.</summary>
    protected void SetChunk(ReadOnlyMemory<byte> chunk, bool last)
    {
        _pending = chunk;
        _done = last;
    }

    /// <summary>Starts over: nothing pending, nothing handed out.</summary>
    protected void Restart(ReadOnlyMemory<byte> first)
    {
        _pending = first;
        _done = false;
        Emitted = 0;
    }

    /// <summary>
    /// Fills <paramref name="into"/> from <paramref name="source"/> after the byte carried over from the last look ahead;
    /// returns the count and whether the source ends there, carrying the byte read to find out.
    /// </summary>
    protected static async ValueTask<(int Filled, bool Last)> FillChunkAsync(Stream source, Memory<byte> into, Carry carry, bool useAsync, CancellationToken ct)
    {
        var filled = 0;
        if (carry.Byte >= 0)
        {
            into.Span[0] = (byte)carry.Byte;
            filled = 1;
        }
        filled += await FillAsync(source, into[filled..], useAsync, ct).ConfigureAwait(false);
        carry.Byte = -1;
        if (filled < into.Length) return (filled, true);
        var one = new byte[1];
        if (await FillAsync(source, one, useAsync, ct).ConfigureAwait(false) == 0) return (filled, true);
        carry.Byte = one[0];
        return (filled, false);
    }

    private static async ValueTask<int> FillAsync(Stream source, Memory<byte> into, bool useAsync, CancellationToken ct)
    {
        var total = 0;
        while (total < into.Length)
        {
            var n = useAsync ? await source.ReadAsync(into[total..], ct).ConfigureAwait(false) : source.Read(into.Span[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    /// <summary>The byte read ahead of a chunk to learn it was not the last; -1 when none.</summary>
    protected sealed class Carry
    {
        /// <summary>The byte, or -1.</summary>
        public int Byte { get; set; } = -1;
    }

    /// <inheritdoc />
    public override long Position { get => Emitted; set => throw new NotSupportedException(); }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        while (_pending.IsEmpty && !_done) NextChunkAsync(false, default).AsTask().GetAwaiter().GetResult();
        return Take(buffer);
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_pending.IsEmpty && !_done) await NextChunkAsync(true, cancellationToken).ConfigureAwait(false);
        return Take(buffer.Span);
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Take(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, _pending.Length);
        _pending.Span[..n].CopyTo(buffer);
        _pending = _pending[n..];
        Emitted += n;
        return n;
    }
}
