using System.Text.Json.Serialization;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The manifest's entry for one base backup. It is written last, after every bundle is durable and
/// pg_backup_stop has returned: a backup without its record does not exist.
/// </summary>
public sealed record BackupRecord
{
    /// <summary>The backup id: its start time (UTC, yyyyMMddTHHmmssZ) and a random suffix; it names the keys under backups/.</summary>
    public required string Id { get; init; }
    /// <summary>The cluster's database system identifier (pg_control), as decimal.</summary>
    public required string SystemIdentifier { get; init; }
    /// <summary>server_version_num of the backed-up server (e.g. 170002).</summary>
    public required int ServerVersionNum { get; init; }
    /// <summary>The timeline the backup started on.</summary>
    public required uint Timeline { get; init; }
    /// <summary>The LSN pg_backup_start returned: recovery replays WAL from here.</summary>
    public required string StartLsn { get; init; }
    /// <summary>The LSN pg_backup_stop returned: recovery must replay at least up to here to be consistent.</summary>
    public required string StopLsn { get; init; }
    /// <summary>The WAL segment holding <see cref="StartLsn"/>.</summary>
    public required string StartWalFile { get; init; }
    /// <summary>The WAL segment holding <see cref="StopLsn"/>.</summary>
    public required string StopWalFile { get; init; }
    /// <summary>When pg_backup_start returned.</summary>
    public required DateTimeOffset StartTime { get; init; }
    /// <summary>When pg_backup_stop returned.</summary>
    public required DateTimeOffset StopTime { get; init; }
    /// <summary>wal_segment_size of the cluster, in bytes.</summary>
    public required long WalSegmentSize { get; init; }
    /// <summary>The backup_label content pg_backup_stop returned; restore writes it into the data directory.</summary>
    public required string BackupLabel { get; init; }
    /// <summary>The tablespace_map content pg_backup_stop returned; null without tablespaces.</summary>
    public string? TablespaceMap { get; init; }
    /// <summary>The bundles' compression (zstd).</summary>
    public required string Compression { get; init; }
    /// <summary>Bytes of the files backed up (uncompressed); for a diff or incr, of what it stored of them.</summary>
    public required long Size { get; init; }
    /// <summary>Bytes stored: the sum of the compressed bundles.</summary>
    public required long StoredSize { get; init; }
    /// <summary>The stored objects, in order; <see cref="BackupEntry.Bundle"/> indexes this list.</summary>
    public required List<BackupBundle> Bundles { get; init; }
    /// <summary>Every directory and file of the backup, with the bundle that holds it.</summary>
    public required List<BackupEntry> Entries { get; init; }
    /// <summary>The tablespaces (pg_tblspc links) the backup holds, with their locations at backup time.</summary>
    public required List<BackupTablespace> Tablespaces { get; init; }

    /// <summary>full, diff (what changed since the last full backup) or incr (since the last backup); absent in records
    /// written before incremental backups: full.</summary>
    public string? Type { get; init; }

    /// <summary>The backup a diff or incr builds on: what it did not store, that one holds (or its own reference).</summary>
    public string? Reference { get; init; }

    /// <summary>Bytes of a block in the block maps (the cluster's page size); absent: no block maps (written before them).</summary>
    public int? BlockSize { get; init; }

    /// <summary>
    /// The server's timezone setting when the backup was taken: the zone PostgreSQL reads a recovery_target_time without an
    /// offset in. Null in records written before it was recorded, or when the session's came from the client.
    /// </summary>
    public string? TimeZone { get; init; }

    /// <summary>
    /// Where the backup was taken: "primary" or "standby", then the server's cluster_name when it has one. Null in
    /// records written before it was recorded.
    /// </summary>
    public string? Node { get; init; }

    /// <summary>
    /// The cluster's databases (OID and name) when the backup began, for restore --db-include. Null in records written
    /// before they were recorded.
    /// </summary>
    public List<BackupDatabase>? Databases { get; init; }

    /// <summary>The backup's type, reading an absent one as full.</summary>
    [JsonIgnore]
    public string Kind => Type ?? BackupKinds.Full;
}
