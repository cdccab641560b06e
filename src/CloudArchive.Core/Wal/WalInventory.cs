namespace CloudArchive.Core.Wal;

/// <summary>Consecutive segments of one timeline (or, for a gap, the missing ones).</summary>
public sealed record WalRange(string First, string Last, long Segments, Lsn StartLsn, Lsn EndLsn);

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
    public bool HasGaps => Timelines.Any(t => t.Gaps.Count > 0);

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
