using System.Buffers;
using System.Runtime.InteropServices;

namespace CloudArchive.Core.Pipeline;

/// <summary>
/// The system's libzstd (Debian's libzstd1, the library the zstd command uses). In the NativeAOT binary it
/// compresses a WAL segment at level 1 about 30 % faster than the managed port (70 vs 100 ms on one core
/// here) and decompresses it about 25 % faster (17 vs 23 ms).
/// </summary>
internal static partial class NativeZstd
{
    private const string Lib = "libzstd.so.1";

    [StructLayout(LayoutKind.Sequential)]
    internal struct InBuffer { public nint Src; public nuint Size; public nuint Pos; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct OutBuffer { public nint Dst; public nuint Size; public nuint Pos; }

    internal enum EndDirective { Continue = 0, Flush = 1, End = 2 }

    internal const int CompressionLevelParam = 100;
    internal const int ChecksumFlagParam = 201;
    internal const int NbWorkersParam = 400;

    [LibraryImport(Lib, EntryPoint = "ZSTD_createCCtx")] internal static partial nint CreateCCtx();
    [LibraryImport(Lib, EntryPoint = "ZSTD_freeCCtx")] internal static partial nuint FreeCCtx(nint cctx);
    [LibraryImport(Lib, EntryPoint = "ZSTD_CCtx_setParameter")] internal static partial nuint SetParameter(nint cctx, int param, int value);
    [LibraryImport(Lib, EntryPoint = "ZSTD_CCtx_setPledgedSrcSize")] internal static partial nuint SetPledgedSrcSize(nint cctx, ulong size);
    [LibraryImport(Lib, EntryPoint = "ZSTD_compressStream2")] internal static unsafe partial nuint CompressStream2(nint cctx, OutBuffer* output, InBuffer* input, EndDirective end);
    [LibraryImport(Lib, EntryPoint = "ZSTD_compressCCtx")] internal static unsafe partial nuint CompressCCtx(nint cctx, byte* dst, nuint dstCapacity, byte* src, nuint srcSize, int level);
    [LibraryImport(Lib, EntryPoint = "ZSTD_compressBound")] internal static partial nuint CompressBound(nuint srcSize);
    [LibraryImport(Lib, EntryPoint = "ZSTD_createDCtx")] internal static partial nint CreateDCtx();
    [LibraryImport(Lib, EntryPoint = "ZSTD_freeDCtx")] internal static partial nuint FreeDCtx(nint dctx);
    [LibraryImport(Lib, EntryPoint = "ZSTD_decompressStream")] internal static unsafe partial nuint DecompressStream(nint dctx, OutBuffer* output, InBuffer* input);
    [LibraryImport(Lib, EntryPoint = "ZSTD_isError")] internal static partial uint IsError(nuint code);
    [LibraryImport(Lib, EntryPoint = "ZSTD_getErrorName")] internal static partial nint GetErrorName(nuint code);

    internal static nuint Check(nuint code)
    {
        if (IsError(code) != 0) throw new InvalidDataException("zstd: " + Marshal.PtrToStringUTF8(GetErrorName(code)));
        return code;
    }

    /// <summary>Whether libzstd.so.1 can be loaded here.</summary>
    internal static bool Available { get; } = NativeLibrary.TryLoad(Lib, out _);
}

/// <summary>A write-only stream that zstd-compresses into <c>inner</c>; the frame is finished on dispose.</summary>
public sealed class ZstdCompressStream : WriteOnlyStream
{
    private const int OutSize = 128 * 1024;
    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly byte[] _out = ArrayPool<byte>.Shared.Rent(OutSize);
    private nint _cctx;

    public ZstdCompressStream(Stream inner, int level, int workers = 1, long pledgedSize = -1, bool leaveOpen = false)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
        _cctx = NativeZstd.CreateCCtx();
        if (_cctx == 0) throw new OutOfMemoryException("zstd: cannot create a compression context");
        NativeZstd.Check(NativeZstd.SetParameter(_cctx, NativeZstd.CompressionLevelParam, level));
        if (workers > 1) NativeZstd.SetParameter(_cctx, NativeZstd.NbWorkersParam, workers); // a library without threads keeps 0
        if (pledgedSize >= 0) NativeZstd.Check(NativeZstd.SetPledgedSrcSize(_cctx, (ulong)pledgedSize));
    }

    public override void Flush() => _inner.Flush();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

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
                    if (remaining == 0) break;
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
                    if (remaining == 0) break;
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
        NativeZstd.FreeCCtx(_cctx);
        _cctx = 0;
        ArrayPool<byte>.Shared.Return(_out);
    }
}

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

    public ZstdDecompressStream(Stream inner, bool leaveOpen = false)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
        _dctx = NativeZstd.CreateDCtx();
        if (_dctx == 0) throw new OutOfMemoryException("zstd: cannot create a decompression context");
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

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
