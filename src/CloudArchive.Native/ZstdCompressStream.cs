using System.Buffers;
using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>A write-only stream that zstd-compresses into <c>inner</c>; the frame is finished on dispose.</summary>
public sealed class ZstdCompressStream : WriteOnlyStream
{
    private const int OutSize = 128 * 1024;
    /// <summary>
    /// Contexts whose frame ended cleanly, kept for the next stream (at most one per core). A backup compresses hundreds of
    /// bundles; a multi-threaded context made and freed for each left its worker threads' buffers (tens of MiB a context)
    /// to fragment the C heap, and the backup's peak RSS grew with the cluster (bench/RESULTS.md, session 14). Reused,
    /// a context keeps its threads and buffers; its parameters are set again for each stream.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentBag<nint> Idle = [];
    private static int _idleCount;
    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly byte[] _out = ArrayPool<byte>.Shared.Rent(OutSize);
    private nint _cctx;
    private bool _ended;

    /// <summary>Compresses at <paramref name="level"/> with <paramref name="workers"/> zstd threads; <paramref
    /// name="pledgedSize"/> (when known) goes into the frame header.</summary>
    public ZstdCompressStream(Stream inner, int level, int workers = 1, long pledgedSize = -1, bool leaveOpen = false)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
        if (Idle.TryTake(out var idle))
        {
            Interlocked.Decrement(ref _idleCount);
            _cctx = idle;
        }
        else _cctx = NativeZstd.CreateCCtx();
        if (_cctx == 0) throw new OutOfMemoryException("zstd: cannot create a compression context");
        NativeZstd.Check(NativeZstd.SetParameter(_cctx, NativeZstd.CompressionLevelParam, level));
        NativeZstd.SetParameter(_cctx, NativeZstd.NbWorkersParam, workers > 1 ? workers : 0); // a library without threads keeps 0
        if (pledgedSize >= 0) NativeZstd.Check(NativeZstd.SetPledgedSrcSize(_cctx, (ulong)pledgedSize));
    }

    /// <inheritdoc />
    public override void Flush() => _inner.Flush();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        var input = buffer;
        while (!input.IsEmpty)
        {
            var (consumed, produced, _) = Step(input, NativeZstd.EndDirective.Continue);
            input = input[consumed..];
            if (produced > 0) _inner.Write(_out, 0, produced);
        }
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var input = buffer;
        while (!input.IsEmpty)
        {
            var (consumed, produced, _) = Step(input.Span, NativeZstd.EndDirective.Continue);
            input = input[consumed..];
            if (produced > 0) await _inner.WriteAsync(_out.AsMemory(0, produced), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private unsafe (int Consumed, int Produced, nuint Remaining) Step(ReadOnlySpan<byte> input, NativeZstd.EndDirective end)
    {
        ObjectDisposedException.ThrowIf(_cctx == 0, this);
        fixed (byte* src = input)
        fixed (byte* dst = _out)
        {
            var inBuf = new NativeZstd.InBuffer { Src = (nint)src, Size = (nuint)input.Length, Pos = 0 };
            var outBuf = new NativeZstd.OutBuffer { Dst = (nint)dst, Size = OutSize, Pos = 0 };
            var remaining = NativeZstd.Check(NativeZstd.CompressStream2(_cctx, &outBuf, &inBuf, end));
            return ((int)inBuf.Pos, (int)outBuf.Pos, remaining);
        }
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        if (_cctx != 0)
        {
            try
            {
                while (true)
                {
                    var (_, produced, remaining) = Step(ReadOnlySpan<byte>.Empty, NativeZstd.EndDirective.End);
                    if (produced > 0) await _inner.WriteAsync(_out.AsMemory(0, produced)).ConfigureAwait(false);
                    if (remaining == 0) { _ended = true; break; }
                }
            }
            finally
            {
                Release();
            }
            if (!_leaveOpen) await _inner.DisposeAsync().ConfigureAwait(false);
        }
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && _cctx != 0)
        {
            try
            {
                while (true)
                {
                    var (_, produced, remaining) = Step(ReadOnlySpan<byte>.Empty, NativeZstd.EndDirective.End);
                    if (produced > 0) _inner.Write(_out, 0, produced);
                    if (remaining == 0) { _ended = true; break; }
                }
            }
            finally
            {
                Release();
            }
            if (!_leaveOpen) _inner.Dispose();
        }
        else Release();
        base.Dispose(disposing);
    }

    private void Release()
    {
        if (_cctx == 0) return;
        // Only a context whose frame ended cleanly goes back, reset to a new session (its parameters are set anew).
        var reusable = _ended && NativeZstd.IsError(NativeZstd.ResetCCtx(_cctx, NativeZstd.ResetSessionOnly)) == 0;
        if (reusable && Interlocked.Increment(ref _idleCount) <= Environment.ProcessorCount)
            Idle.Add(_cctx);
        else
        {
            if (reusable) Interlocked.Decrement(ref _idleCount);
            NativeZstd.FreeCCtx(_cctx);
        }
        _cctx = 0;
        ArrayPool<byte>.Shared.Return(_out);
    }
}
