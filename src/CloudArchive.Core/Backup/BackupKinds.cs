namespace CloudArchive.Core.Backup;

/// <summary>The kinds of backup: <c>backup-push --type</c>.</summary>
public static class BackupKinds
{
    /// <summary>Every file, whole.</summary>
    public const string Full = "full";
    /// <summary>What changed since the last full backup.</summary>
    public const string Diff = "diff";
    /// <summary>What changed since the last backup of any type.</summary>
    public const string Incr = "incr";
}
