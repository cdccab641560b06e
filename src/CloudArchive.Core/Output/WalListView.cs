using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Output;

/// <summary>wal-list --json: the archived WAL per timeline.</summary>
public sealed record WalListView(long? SegmentSize, string? SystemIdentifier, bool HasGaps, IReadOnlyList<TimelineView> Timelines)
{
    /// <summary>The view of <paramref name="inv"/> (the segment size only when a segment's record told it).</summary>
    public static WalListView Of(WalInventory inv) => new(inv.SystemIdentifier is null ? null : inv.SegmentSize, inv.SystemIdentifier, inv.HasGaps,
        [.. inv.Timelines.Select(TimelineView.Of)]);
}
