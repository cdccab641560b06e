using System.Runtime.InteropServices;

namespace CloudArchive.Native;

/// <summary>
/// A growable run of bytes in native memory, freed when disposed. A backup's block maps (16 bytes per 8 KiB block,
/// 2 MiB per 1 GiB relation file) are built here: as managed arrays they were large-object garbage that the GC let pile
/// up, so the backup's peak RSS grew with the cluster (bench/RESULTS.md); freed here, it does not.
/// </summary>
public sealed unsafe class NativeByteList : IDisposable
{
    private byte* _pointer;
    private nuint _capacity;

    /// <summary>An empty list with room for <paramref name="capacity"/> bytes before it grows.</summary>
    public NativeByteList(long capacity = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        if (capacity > 0) Grow((nuint)capacity);
    }

    /// <summary>Bytes appended so far.</summary>
    public long Length { get; private set; }

    /// <summary>Appends <paramref name="data"/>, doubling the room when it runs out.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        var needed = (nuint)Length + (nuint)data.Length;
        if (needed > _capacity) Grow(Math.Max(needed, Math.Max(_capacity * 2, 4096)));
        data.CopyTo(new Span<byte>(_pointer + Length, data.Length));
        Length += data.Length;
    }

    /// <summary><paramref name="length"/> bytes from <paramref name="start"/>; valid until the next append or disposal.</summary>
    public ReadOnlySpan<byte> Slice(long start, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + length, Length);
        return length == 0 ? [] : new ReadOnlySpan<byte>(_pointer + start, length);
    }

    /// <summary>A read-only stream over the bytes appended so far; valid until the next append or disposal.</summary>
    public Stream OpenRead() => _pointer == null ? new MemoryStream([], writable: false) : new UnmanagedMemoryStream(_pointer, Length);

    private void Grow(nuint capacity)
    {
        _pointer = (byte*)NativeMemory.Realloc(_pointer, capacity);
        _capacity = capacity;
    }

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        if (_pointer == null) return;
        NativeMemory.Free(_pointer);
        _pointer = null;
        _capacity = 0;
        Length = 0;
    }
}
