using System.Text.Json.Serialization;
using CloudArchive.Core.Operations;

namespace CloudArchive.Core.Output;

/// <summary>status --json: the archive at a glance (docs/monitoring.md lists the fields).</summary>
public sealed record StatusView(
    string Store, IReadOnlyDictionary<string, int> EncryptionKeys, StatusView.Window? PitrWindow, StatusView.Drill? LastDrill,
    StatusView.Archived? LastArchived, IReadOnlyList<BackupView> Backups, IReadOnlyList<StatusView.Dump> Dumps, long WalStoredBytes,
    IReadOnlyList<TimelineView> Timelines, IReadOnlyList<StatusView.Stream> Streamed, IReadOnlyList<string> Problems)
{
    /// <summary>The lock horizon of the records read (--lock-days).</summary>
    public LocksView Locks { get; init; } = new(0, null, null);

    /// <summary>What the second store (--store-2) lacks of the first; absent without a second store.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Second? SecondStore { get; init; }

    /// <summary>What the second store lacks of the first (objects, WAL files, backups, dumps), and the spool's backlog when it was found.</summary>
    public sealed record Second(string Store, string Mode, bool Complete, long LackingObjects, long LackingBytes, int LackingWalFiles,
        IReadOnlyList<string> LackingBackups, IReadOnlyList<string> LackingDumps,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? BacklogObjects,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTimeOffset? BacklogOldest,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Failure);

    /// <summary>How far wal-receive's pieces of a timeline's segment in progress reach, and how long ago the last one was stored.</summary>
    public sealed record Stream(uint Timeline, string Segment, string Lsn, DateTimeOffset? StoredAt, long? AgeSeconds);

    /// <summary>The PITR window: from the end of the oldest restorable backup to about the latest point without a gap.</summary>
    public sealed record Window(DateTimeOffset Earliest, string EarliestBackup, DateTimeOffset Latest, string LatestSegment, uint LatestTimeline);

    /// <summary>The newest restore drill.</summary>
    public sealed record Drill(string Id, bool Passed, int ExitCode, string? FailedStage, string? Failure, DateTimeOffset EndTime,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? RestoreSeconds, double TotalSeconds);

    /// <summary>The WAL file archived last, whatever its timeline.</summary>
    public sealed record Archived(string Segment, DateTimeOffset ArchivedAt,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? PushedBy, long AgeSeconds);

    /// <summary>A SQL dump.</summary>
    public sealed record Dump(string Id, string Kind, string? Database, string Format, DateTimeOffset StartTime, DateTimeOffset EndTime,
        double DurationSeconds, long Size, long StoredSize);

    /// <summary>The view of <paramref name="r"/>, its ages counted to <paramref name="now"/>.</summary>
    public static StatusView Of(StatusReport r, DateTimeOffset now) => new(
        r.Store, r.Keys,
        r.Window is { } w ? new Window(w.Earliest, w.EarliestBackup, w.Latest, w.LatestSegment, w.LatestTimeline) : null,
        r.LastDrill is { } d ? new Drill(d.Id, d.Passed, d.ExitCode, d.FailedStage, d.Failure, d.EndTime,
            d.RestoreSeconds is { } rs ? Math.Round(rs, 1) : null, Math.Round(d.TotalSeconds, 1)) : null,
        r.LastArchived is { } segment ? new Archived(segment, r.LastArchivedAt!.Value, r.LastPushedBy, (long)(now - r.LastArchivedAt.Value).TotalSeconds) : null,
        [.. r.Backups.AsEnumerable().Reverse().Select(b => BackupView.Of(b, !r.Unrestorable.ContainsKey(b.Id), r.Unrestorable.GetValueOrDefault(b.Id)))],
        [.. r.Dumps.Select(x => new Dump(x.Id, x.Kind, x.Database, x.Format, x.StartTime, x.EndTime, Math.Round((x.EndTime - x.StartTime).TotalSeconds, 1),
            x.Size, x.StoredSize))],
        r.WalStoredBytes, [.. r.Wal.Timelines.Select(TimelineView.Of)],
        [.. r.Streamed.Select(e => new Stream(e.Segment.Timeline, e.Segment.Name, e.Reach.ToString(), e.StoredAt,
            e.StoredAt is { } at ? (long)(now - at).TotalSeconds : null))],
        r.Problems)
    {
        Locks = LocksView.Of(r.Locks),
        SecondStore = r.SecondStore is { } t ? new Second(t.Store, t.Mode, t.Complete, t.LackingObjects, t.LackingBytes, t.LackingSegments,
            t.LackingBackups, t.LackingDumps, t.BacklogObjects, t.BacklogOldest, t.Failure) : null,
    };
}
