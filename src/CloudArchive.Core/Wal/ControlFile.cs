using System.Buffers.Binary;

namespace CloudArchive.Core.Wal;

/// <summary>
/// What wal-fetch needs to know of the cluster in recovery, from its <c>global/pg_control</c>: the database system
/// identifier (the file's first 8 bytes) and the WAL segment size. The size is found after the float-format
/// marker (1234567.0), which every release since 8.x writes before blcksz, relseg_size, xlog_blcksz and
/// xlog_seg_size; searching for it keeps this independent of the fields before it, which change between releases.
/// </summary>
public sealed record ControlFile(ulong SystemIdentifier, long? SegmentSize)
{
    private const double FloatFormat = 1234567.0;

    /// <summary>The control file of <paramref name="dataDirectory"/>; null when it is missing or unreadable.</summary>
    public static ControlFile? TryRead(string dataDirectory)
    {
        try
        {
            using var f = File.OpenRead(Path.Combine(dataDirectory, "global", "pg_control"));
            var bytes = new byte[1024];
            var n = f.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            return Parse(bytes.AsSpan(0, n));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Reads the system identifier and segment size from pg_control's bytes; null when they are too short.</summary>
    public static ControlFile? Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 8) return null;
        var system = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        for (var at = 8; at + 24 <= bytes.Length; at += 8)
        {
            if (BinaryPrimitives.ReadDoubleLittleEndian(bytes[at..]) != FloatFormat) continue;
            var segmentSize = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(at + 20)..]);
            return new ControlFile(system, WalFileName.IsValidSegmentSize(segmentSize) ? segmentSize : null);
        }
        return new ControlFile(system, null);
    }
}
