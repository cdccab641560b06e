using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Output;

/// <summary>A run of archived segments (or of missing ones: a gap), in wal-list --json and status --json.</summary>
public sealed record WalRangeView(string First, string Last, long Segments, string StartLsn, string EndLsn)
{
    /// <summary>The view of <paramref name="r"/>.</summary>
    public static WalRangeView Of(WalRange r) => new(r.First, r.Last, r.Segments, r.StartLsn.ToString(), r.EndLsn.ToString());
}
