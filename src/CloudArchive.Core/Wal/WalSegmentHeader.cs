using System.Buffers.Binary;

namespace CloudArchive.Core.Wal;

/// <summary>
/// The long page header at the start of every WAL segment (XLogLongPageHeaderData): it names the
/// cluster (system identifier), the segment size and the LSN of the page, so a file can be checked
/// against its name before it is archived.
/// </summary>
public sealed record WalSegmentHeader(ushort Magic, ushort Info, uint PageTimeline, Lsn PageAddress,
    ulong SystemIdentifier, uint SegmentSize, uint BlockSize)
{
    /// <summary>Bytes of the long page header.</summary>
    public const int Size = 40;
    private const ushort XlpLongHeader = 0x0002;

    /// <summary>Reads the header; null when the bytes cannot be the start of a WAL segment.</summary>
    public static WalSegmentHeader? TryRead(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Size) return null;
        var h = new WalSegmentHeader(
            BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]),
            new Lsn(BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..])),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[24..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[32..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[36..]));
        // 0xD0xx/0xD1xx: every PostgreSQL release since 9.x; the long-header flag marks a segment's first page.
        var magicOk = (h.Magic & 0xFE00) == 0xD000;
        var blockOk = h.BlockSize is >= 1024 and <= 65536 && (h.BlockSize & (h.BlockSize - 1)) == 0;
        if (!magicOk || (h.Info & XlpLongHeader) == 0 || !blockOk || !WalFileName.IsValidSegmentSize(h.SegmentSize))
            return null;
        return h;
    }

    /// <summary>Writes a header; used to build test segments without a server.</summary>
    public void WriteTo(Span<byte> bytes)
    {
        bytes[..Size].Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[2..], Info);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[4..], PageTimeline);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[8..], PageAddress.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[24..], SystemIdentifier);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[32..], SegmentSize);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[36..], BlockSize);
    }

    /// <summary>The header PostgreSQL would write at the start of <paramref name="segment"/> (for tests and benchmarks).</summary>
    public static WalSegmentHeader For(WalFileName segment, ulong systemIdentifier, uint segmentSize) =>
        new(0xD110, XlpLongHeader, segment.Timeline, segment.StartLsn(segmentSize), systemIdentifier, segmentSize, 8192);
}
