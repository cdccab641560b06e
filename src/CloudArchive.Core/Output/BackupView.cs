using System.Text.Json.Serialization;
using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Output;

/// <summary>A base backup as backup-list --json and status --json show it: one shape for both.</summary>
public sealed record BackupView(
    string Id, string Type, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Reference,
    DateTimeOffset StartTime, DateTimeOffset StopTime, double DurationSeconds, string StartLsn, string StopLsn, uint Timeline,
    string? SystemIdentifier, int ServerVersionNum, long Size, long StoredSize, int Files,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Node,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Restorable,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Problem)
{
    /// <summary>The view of <paramref name="b"/>; <paramref name="problem"/> (status only) says why it cannot be restored.</summary>
    public static BackupView Of(BackupRecord b, bool? restorable = null, string? problem = null) => new(
        b.Id, b.Kind, b.Reference, b.StartTime, b.StopTime, Math.Round((b.StopTime - b.StartTime).TotalSeconds, 1), b.StartLsn, b.StopLsn, b.Timeline,
        b.SystemIdentifier, b.ServerVersionNum, b.Size, b.StoredSize, b.Entries.Count(e => e.Sha256 is not null), b.Node, restorable, problem);
}
