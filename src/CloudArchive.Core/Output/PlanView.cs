using System.Text.Json.Serialization;
using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Output;

/// <summary>plan --json: what a restore to the target needs.</summary>
public sealed record PlanView(
    string Target, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TargetValue,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TargetZone, uint TargetTimeline, string Backup,
    IReadOnlyList<PlanView.ChainMember> Chain, IReadOnlyList<uint> TimelinePath, IReadOnlyList<PlanView.WalSpan> Wal, string FirstWalSegment,
    string LastWalSegment, IReadOnlyList<PlanView.Tablespace> Tablespaces, long BackupBytes, long WalBytes)
{
    /// <summary>A backup of the chain: the one restored and those it builds on.</summary>
    public sealed record ChainMember(string Id, string Type, long StoredSize);

    /// <summary>The WAL replayed on one timeline, and the LSN at which the next one branches off (null on the last).</summary>
    public sealed record WalSpan(uint Timeline, string First, string Last, long Segments,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? SwitchLsn);

    /// <summary>A tablespace of the backup, where it was.</summary>
    public sealed record Tablespace(uint Oid, string Name, string Location);

    /// <summary>The view of <paramref name="p"/>.</summary>
    public static PlanView Of(RecoveryPlan p) => new(
        p.Target.Kind.ToString().ToLowerInvariant(), p.Target.Value, p.Target.Zone, p.TargetTimeline, p.Backup.Id,
        [.. p.Chain.Members.Select(m => new ChainMember(m.Id, m.Kind, m.StoredSize))], p.TimelinePath,
        [.. p.Wal.Select(w => new WalSpan(w.Timeline, w.FirstSegment, w.LastSegment, w.Segments, w.EndsAt?.ToString()))],
        p.FirstWalSegment, p.LastWalSegment, [.. p.Backup.Tablespaces.Select(t => new Tablespace(t.Oid, t.Name, t.Location))], p.BackupBytes, p.WalBytes);
}
