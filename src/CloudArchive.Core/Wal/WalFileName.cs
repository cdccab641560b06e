using System.Globalization;
using System.Text.RegularExpressions;

namespace CloudArchive.Core.Wal;

public enum WalFileKind { Segment, Partial, History, BackupHistory }

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

    public static WalFileName Parse(string name) =>
        TryParse(name, out var n) ? n
            : throw new CloudArchiveException(ExitCode.InvalidInput,
                $"'{name}' is not a WAL file name (a segment such as 000000010000000000000001, a .partial segment, a .history or a .backup file)");

    public static WalFileName ForSegment(uint timeline, ulong segmentNumber, long segmentSize)
    {
        var perId = SegmentsPerXLogId(segmentSize);
        var log = (uint)(segmentNumber / perId);
        var seg = (uint)(segmentNumber % perId);
        return new WalFileName($"{timeline:X8}{log:X8}{seg:X8}", WalFileKind.Segment, timeline, log, seg);
    }

    public bool HasSegmentNumber => Kind is not WalFileKind.History;

    public ulong SegmentNumber(long segmentSize) => (ulong)Log * SegmentsPerXLogId(segmentSize) + Seg;

    public Lsn StartLsn(long segmentSize) => new(SegmentNumber(segmentSize) * (ulong)segmentSize);

    /// <summary>The 24-character segment this file belongs to (for .partial and .backup files).</summary>
    public string SegmentPart => Name[..24];

    public static ulong SegmentsPerXLogId(long segmentSize) => 0x1_0000_0000UL / (ulong)segmentSize;

    public static bool IsValidSegmentSize(long size) =>
        size is >= 1024 * 1024 and <= 1024L * 1024 * 1024 && (size & (size - 1)) == 0;

    private static uint Hex(string s) => uint.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);

    public override string ToString() => Name;
}
