using System.Buffers;
using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>
/// The system's libzstd (Debian's libzstd1, the library the zstd command uses): in the NativeAOT binary it
/// compresses and decompresses a WAL segment markedly faster than the managed port (figures: bench/RESULTS.md,
/// "Figures behind the shape of the code").
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
    internal const int NbWorkersParam = 400;

    [LibraryImport(Lib, EntryPoint = "ZSTD_createCCtx")] internal static partial nint CreateCCtx();
    [LibraryImport(Lib, EntryPoint = "ZSTD_freeCCtx")] internal static partial nuint FreeCCtx(nint cctx);
    [LibraryImport(Lib, EntryPoint = "ZSTD_CCtx_setParameter")] internal static partial nuint SetParameter(nint cctx, int param, int value);
    [LibraryImport(Lib, EntryPoint = "ZSTD_CCtx_reset")] internal static partial nuint ResetCCtx(nint cctx, int reset);
    internal const int ResetSessionOnly = 1;
    [LibraryImport(Lib, EntryPoint = "ZSTD_CCtx_setPledgedSrcSize")] internal static partial nuint SetPledgedSrcSize(nint cctx, ulong size);
    [LibraryImport(Lib, EntryPoint = "ZSTD_compressStream2")]
        internal static unsafe partial nuint CompressStream2(nint cctx, OutBuffer* output, InBuffer* input, EndDirective end);
    [LibraryImport(Lib, EntryPoint = "ZSTD_compressCCtx")]
        internal static unsafe partial nuint CompressCCtx(nint cctx, byte* dst, nuint dstCapacity, byte* src, nuint srcSize, int level);
    [LibraryImport(Lib, EntryPoint = "ZSTD_compressBound")] internal static partial nuint CompressBound(nuint srcSize);
    [LibraryImport(Lib, EntryPoint = "ZSTD_createDCtx")] internal static partial nint CreateDCtx();
    [LibraryImport(Lib, EntryPoint = "ZSTD_freeDCtx")] internal static partial nuint FreeDCtx(nint dctx);
    [LibraryImport(Lib, EntryPoint = "ZSTD_decompressStream")]
        internal static unsafe partial nuint DecompressStream(nint dctx, OutBuffer* output, InBuffer* input);
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
