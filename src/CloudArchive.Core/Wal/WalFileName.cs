using System.Globalization;
using System.Text.RegularExpressions;

namespace CloudArchive.Core.Wal;

/// <summary>The kinds of file PostgreSQL archives.</summary>
public enum WalFileKind
{
    /// <summary>A complete WAL segment (TTTTTTTTXXXXXXXXYYYYYYYY).</summary>
    Segment,
    /// <summary>A segment cut short at a promotion (.partial).</summary>
    Partial,
    /// <summary>A timeline history file (TTTTTTTT.history).</summary>
    History,
    /// <summary>A backup history file (segment.offset.backup) written by pg_backup_stop.</summary>
    BackupHistory,
}

/// <summary>
/// A file name PostgreSQL hands to archive_command or restore_command (%f): a segment
/// (TTTTTTTTXXXXXXXXYYYYYYYY), a .partial segment, a timeline .history file or a backup history file.
/// </summary>
public sealed partial record WalFileName(string Name, WalFileKind Kind, uint Timeline, uint Log, uint Seg)
{
    [GeneratedRegex("^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\\.partial|\\.[0-9A-F]{8}\\.backup)?\\z")]
    private static partial Regex SegmentPattern();

    [GeneratedRegex("^([0-9A-F]{8})\\.history\\z")]
    private static partial Regex HistoryPattern();

    /// <summary>Parses a name PostgreSQL uses for WAL; false for anything else (timeline 0 included).</summary>
    public static bool TryParse(string name, out WalFileName result)
    {
        result = null!;
        var m = SegmentPattern().Match(name);
        if (m.Success)
        {
            var kind = m.Groups[4].Value switch
            {
                "" => WalFileKind.Segment,
                ".partial" => WalFileKind.Partial,
                _ => WalFileKind.BackupHistory,
            };
            var tli = Hex(m.Groups[1].Value);
            if (tli == 0) return false;
            result = new WalFileName(name, kind, tli, Hex(m.Groups[2].Value), Hex(m.Groups[3].Value));
            return true;
        }
        m = HistoryPattern().Match(name);
        if (m.Success && Hex(m.Groups[1].Value) is var tl and > 0)
        {
            result = new WalFileName(name, WalFileKind.History, tl, 0, 0);
            return true;
        }
        return false;
    }

    /// <summary>Parses a WAL file name; <see cref="ExitCode.InvalidInput"/> when it is not one.</summary>
    public static WalFileName Parse(string name) =>
        TryParse(name, out var n) ? n
            : throw new CloudArchiveException(ExitCode.InvalidInput,
                $"'{name}' is not a WAL file name (a segment such as 000000010000000000000001, a .partial segment, a .history or a .backup file)");

    /// <summary>The segment with number <paramref name="segmentNumber"/> (its start LSN divided by the segment size) on <paramref name="timeline"/>.</summary>
    public static WalFileName ForSegment(uint timeline, ulong segmentNumber, long segmentSize)
    {
        var perId = SegmentsPerXLogId(segmentSize);
        var log = (uint)(segmentNumber / perId);
        var seg = (uint)(segmentNumber % perId);
        return new WalFileName($"{timeline:X8}{log:X8}{seg:X8}", WalFileKind.Segment, timeline, log, seg);
    }

    /// <summary>Whether the name carries a segment number (all but .history files).</summary>
    public bool HasSegmentNumber => Kind is not WalFileKind.History;

    /// <summary>The segment number: the start LSN divided by <paramref name="segmentSize"/>.</summary>
    public ulong SegmentNumber(long segmentSize) => (ulong)Log * SegmentsPerXLogId(segmentSize) + Seg;

    /// <summary>The first LSN of the segment.</summary>
    public Lsn StartLsn(long segmentSize) => new(SegmentNumber(segmentSize) * (ulong)segmentSize);

    /// <summary>The 24-character segment this file belongs to (for .partial and .backup files).</summary>
    public string SegmentPart => Name[..24];

    /// <summary>How many segments one 4 GiB "xlogid" holds: the unit of the name's middle eight digits.</summary>
    public static ulong SegmentsPerXLogId(long segmentSize) => 0x1_0000_0000UL / (ulong)segmentSize;

    /// <summary>Whether <paramref name="size"/> is a wal_segment_size PostgreSQL allows: a power of two from 1 MiB to 1 GiB.</summary>
    public static bool IsValidSegmentSize(long size) =>
        size is >= 1024 * 1024 and <= 1024L * 1024 * 1024 && (size & (size - 1)) == 0;

    private static uint Hex(string s) => uint.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);

    /// <inheritdoc />
    public override string ToString() => Name;
}
