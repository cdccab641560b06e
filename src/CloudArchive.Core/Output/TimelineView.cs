using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Output;

/// <summary>One timeline of the archive, in wal-list --json and status --json.</summary>
public sealed record TimelineView(uint Timeline, bool HistoryFile, long Segments, IReadOnlyList<WalRangeView> Ranges, IReadOnlyList<WalRangeView> Gaps,
    IReadOnlyList<string> Partial, IReadOnlyList<string> BackupHistory)
{
    /// <summary>The view of <paramref name="t"/>.</summary>
    public static TimelineView Of(TimelineInventory t) => new(t.Timeline, t.HasHistoryFile, t.Segments, [.. t.Ranges.Select(WalRangeView.Of)],
        [.. t.Gaps.Select(WalRangeView.Of)], t.Partials, t.BackupHistoryFiles);
}
