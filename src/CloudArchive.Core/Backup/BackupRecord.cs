namespace CloudArchive.Core.Backup;

/// <summary>
/// The manifest's entry for one base backup. It is written last, after every bundle is durable and
/// pg_backup_stop has returned: a backup without its record does not exist.
/// </summary>
public sealed record BackupRecord
{
    public required string Id { get; init; }
    public required string SystemIdentifier { get; init; }
    public required int ServerVersionNum { get; init; }
    public required uint Timeline { get; init; }
    public required string StartLsn { get; init; }
    public required string StopLsn { get; init; }
    public required string StartWalFile { get; init; }
    public required string StopWalFile { get; init; }
    public required DateTimeOffset StartTime { get; init; }
    public required DateTimeOffset StopTime { get; init; }
    public required long WalSegmentSize { get; init; }
    public required string BackupLabel { get; init; }
    public string? TablespaceMap { get; init; }
    public required string Compression { get; init; }
    public required long Size { get; init; }
    public required long StoredSize { get; init; }
    public required List<BackupBundle> Bundles { get; init; }
    public required List<BackupEntry> Entries { get; init; }
    public required List<BackupTablespace> Tablespaces { get; init; }
}

/// <summary>One stored object of the backup: a zstd-compressed tar of some of its files.</summary>
public sealed record BackupBundle(string Key, long Size, long StoredSize);

/// <summary>A directory (Sha256 null) or a file of the data directory or of a tablespace (path under pg_tblspc/OID/).</summary>
public sealed record BackupEntry(string Path, int Bundle, long Size, string? Sha256, int Mode);

public sealed record BackupTablespace(uint Oid, string Name, string Location);
