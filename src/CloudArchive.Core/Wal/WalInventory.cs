namespace CloudArchive.Core.Wal;

/// <summary>Consecutive segments of one timeline (or, for a gap, the missing ones).</summary>
public sealed record WalRange(string First, string Last, long Segments, Lsn StartLsn, Lsn EndLsn);

/// <summary>The archived WAL of one timeline.</summary>
/// <param name="Timeline">The timeline.</param>
/// <param name="HasHistoryFile">Its .history file is archived (timeline 1 has none).</param>
/// <param name="Segments">How many segments are archived.</param>
/// <param name="Ranges">The runs of consecutive segments.</param>
/// <param name="Gaps">The segments missing between the runs.</param>
/// <param name="Partials">The .partial segments (left by a promotion).</param>
/// <param name="BackupHistoryFiles">The .backup files.</param>
public sealed record TimelineInventory(
    uint Timeline,
    bool HasHistoryFile,
    long Segments,
    IReadOnlyList<WalRange> Ranges,
    IReadOnlyList<WalRange> Gaps,
    IReadOnlyList<string> Partials,
    IReadOnlyList<string> BackupHistoryFiles);

/// <summary>What the archive holds, per timeline, as ranges with the gaps between them; computed from names alone.</summary>
public sealed record WalInventory(long? SegmentSize, string? SystemIdentifier, IReadOnlyList<TimelineInventory> Timelines)
{
    /// <summary>Whether any timeline misses segments between its first and last.</summary>
    public bool HasGaps => Timelines.Any(t => t.Gaps.Count > 0);

    /// <summary>Groups WAL file names into timelines, ranges and gaps.</summary>
    public static WalInventory Build(IEnumerable<WalFileName> names, long segmentSize, string? systemIdentifier)
    {
        var timelines = new List<TimelineInventory>();
        foreach (var group in names.GroupBy(n => n.Timeline).OrderBy(g => g.Key))
        {
            var segments = group.Where(n => n.Kind == WalFileKind.Segment)
                .Select(n => n.SegmentNumber(segmentSize)).Distinct().Order().ToList();
            var ranges = new List<WalRange>();
            var gaps = new List<WalRange>();
            var i = 0;
            while (i < segments.Count)
            {
                var j = i;
                while (j + 1 < segments.Count && segments[j + 1] == segments[j] + 1) j++;
                if (ranges.Count > 0)
                    gaps.Add(RangeOf(group.Key, segments[i - 1] + 1, segments[i] - 1, segmentSize));
                ranges.Add(RangeOf(group.Key, segments[i], segments[j], segmentSize));
                i = j + 1;
            }
            timelines.Add(new TimelineInventory(
                group.Key,
                group.Any(n => n.Kind == WalFileKind.History),
                segments.Count,
                ranges,
                gaps,
                group.Where(n => n.Kind == WalFileKind.Partial).Select(n => n.Name).Order(StringComparer.Ordinal).ToList(),
                group.Where(n => n.Kind == WalFileKind.BackupHistory).Select(n => n.Name).Order(StringComparer.Ordinal).ToList()));
        }
        return new WalInventory(segmentSize, systemIdentifier, timelines);
    }

    private static WalRange RangeOf(uint timeline, ulong first, ulong last, long segmentSize) => new(
        WalFileName.ForSegment(timeline, first, segmentSize).Name,
        WalFileName.ForSegment(timeline, last, segmentSize).Name,
        (long)(last - first + 1),
        new Lsn(first * (ulong)segmentSize),
        new Lsn((last + 1) * (ulong)segmentSize));
}
