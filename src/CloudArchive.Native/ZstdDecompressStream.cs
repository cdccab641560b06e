using System.Buffers;
using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>A read-only stream of the content of the zstd frames read from <c>inner</c>; a truncated stream is an error.</summary>
public sealed class ZstdDecompressStream : ReadOnlyStream
{
    private const int InSize = 128 * 1024;
    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly byte[] _in = ArrayPool<byte>.Shared.Rent(InSize);
    private int _inPos, _inLen;
    private bool _innerDone;
    private nuint _lastHint = 1; // 0 once a frame is complete and flushed
    private nint _dctx;

    /// <summary>Decompresses what is read from <paramref name="inner"/>.</summary>
    public ZstdDecompressStream(Stream inner, bool leaveOpen = false)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
        _dctx = NativeZstd.CreateDCtx();
        if (_dctx == 0) throw new OutOfMemoryException("zstd: cannot create a decompression context");
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        while (true)
        {
            if (_inPos == _inLen && !_innerDone)
            {
                _inLen = _inner.Read(_in, 0, InSize);
                _inPos = 0;
                _innerDone = _inLen == 0;
            }
            var produced = Step(buffer, out var done);
            if (produced > 0 || done) return produced;
        }
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty) return 0;
        while (true)
        {
            if (_inPos == _inLen && !_innerDone)
            {
                _inLen = await _inner.ReadAsync(_in.AsMemory(0, InSize), cancellationToken).ConfigureAwait(false);
                _inPos = 0;
                _innerDone = _inLen == 0;
            }
            var produced = Step(buffer.Span, out var done);
            if (produced > 0 || done) return produced;
        }
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>One decompression step; <paramref name="done"/> when the input is exhausted and nothing more can come out.</summary>
    private unsafe int Step(Span<byte> destination, out bool done)
    {
        ObjectDisposedException.ThrowIf(_dctx == 0, this);
        done = false;
        fixed (byte* src = _in)
        fixed (byte* dst = destination)
        {
            var inBuf = new NativeZstd.InBuffer { Src = (nint)src, Size = (nuint)_inLen, Pos = (nuint)_inPos };
            var outBuf = new NativeZstd.OutBuffer { Dst = (nint)dst, Size = (nuint)destination.Length, Pos = 0 };
            var hint = NativeZstd.Check(NativeZstd.DecompressStream(_dctx, &outBuf, &inBuf));
            // A call that neither consumes nor produces (at the end of the input) only reports the header size
            // of a next frame; the state that counts is that of the last call that did something.
            if ((int)inBuf.Pos != _inPos || outBuf.Pos > 0) _lastHint = hint;
            _inPos = (int)inBuf.Pos;
            if (outBuf.Pos > 0) return (int)outBuf.Pos;
            if (_innerDone && _inPos == _inLen)
            {
                // Out of input: fine at a frame boundary, an error in the middle of a frame.
                if (_lastHint != 0) throw new EndOfStreamException("zstd: the stream ends in the middle of a frame");
                done = true;
            }
            return 0;
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_dctx != 0)
        {
            NativeZstd.FreeDCtx(_dctx);
            _dctx = 0;
            ArrayPool<byte>.Shared.Return(_in);
            if (disposing && !_leaveOpen) _inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
