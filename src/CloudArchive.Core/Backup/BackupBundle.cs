namespace CloudArchive.Core.Backup;

/// <summary>
/// One stored object of the backup: a zstd-compressed tar of some of its files (for an incremental, of what changed in
/// them), and the block maps of the relation files read into it.
/// </summary>
public sealed record BackupBundle(string Key, long Size, long StoredSize)
{
    /// <summary>The object holding the block maps of this bundle's relation files, in entry order; null when none.</summary>
    public string? MapKey { get; init; }
}
