using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>
/// Native memory for a whole WAL segment, aligned to 2 MiB and advised for transparent huge pages. A fresh
/// 16 MiB buffer then costs 8 page faults instead of 4,096, which matters in a process that lives for one segment
/// (bench/RESULTS.md, "Figures behind the shape of the code").
/// </summary>
public sealed unsafe partial class NativeBuffer : IDisposable
{
    private const nuint HugePage = 2 << 20;
    private const int MadvHugePage = 14;
    private byte* _pointer;

    /// <summary>Allocates <paramref name="length"/> bytes, rounded up to whole huge pages.</summary>
    public NativeBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        var size = ((nuint)Math.Max(length, 1) + HugePage - 1) & ~(HugePage - 1);
        _pointer = (byte*)NativeMemory.AlignedAlloc(size, HugePage);
        _ = MAdvise(_pointer, size, MadvHugePage); // a kernel without THP keeps small pages: same bytes, more faults
    }

    /// <summary>The usable length in bytes.</summary>
    public int Length { get; }

    /// <summary>The start of the memory; throws once disposed.</summary>
    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    /// <summary>The whole buffer as a span.</summary>
    public Span<byte> GetSpan() => new(Pointer, Length);

    /// <summary>A read-only stream over the first <paramref name="length"/> bytes; valid while this buffer is.</summary>
    public Stream OpenRead(int length) => new UnmanagedMemoryStream(Pointer, length);

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        if (_pointer == null) return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int MAdvise(void* address, nuint length, int advice);
}
