using System.Buffers;
using CloudArchive.Native;
using System.Threading.Channels;

namespace CloudArchive.Core.Pipeline;

/// <summary>
/// Reads a source stream on a thread of its own, up to <c>depth</c> chunks ahead of the consumer: wrapped
/// around a decompressor, zstd runs on one core while the consumer (tar, SHA-256, file writes) runs on
/// another. The source's exception surfaces, unchanged, on the consumer's next read.
/// </summary>
internal sealed class ReadAheadStream : ReadOnlyStream
{
    private const int ChunkSize = 256 * 1024;
    private readonly Channel<(byte[] Buffer, int Length)> _chunks;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _producer;
    private (byte[] Buffer, int Length) _current;
    private int _offset;
    private bool _done;

    public ReadAheadStream(Stream source, int depth = 16)
    {
        _chunks = Channel.CreateBounded<(byte[], int)>(new BoundedChannelOptions(depth) { SingleReader = true, SingleWriter = true });
        _producer = Task.Run(() => ProduceAsync(source, _stop.Token));
    }

    private async Task ProduceAsync(Stream source, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
                var n = await source.ReadAtLeastAsync(buffer.AsMemory(0, ChunkSize), ChunkSize, throwOnEndOfStream: false, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    break;
                }
                await _chunks.Writer.WriteAsync((buffer, n), ct).ConfigureAwait(false);
            }
            _chunks.Writer.Complete();
        }
        catch (Exception e)
        {
            _chunks.Writer.Complete(e);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (destination.IsEmpty || _done) return 0;
        if (_current.Buffer is null || _offset == _current.Length)
        {
            Recycle();
            try
            {
                if (!await _chunks.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    _done = true;
                    return 0;
                }
            }
            catch (ChannelClosedException e) when (e.InnerException is not null)
            {
                throw e.InnerException;
            }
            _chunks.Reader.TryRead(out _current);
            _offset = 0;
        }
        var n = Math.Min(destination.Length, _current.Length - _offset);
        _current.Buffer.AsMemory(_offset, n).CopyTo(destination);
        _offset += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private void Recycle()
    {
        if (_current.Buffer is not null) ArrayPool<byte>.Shared.Return(_current.Buffer);
        _current = default;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _stop.Cancel();
            try
            {
                _producer.GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
            }
            Recycle();
            while (_chunks.Reader.TryRead(out var chunk)) ArrayPool<byte>.Shared.Return(chunk.Buffer);
            _stop.Dispose();
        }
        base.Dispose(disposing);
    }
}
