namespace CloudArchive.Core.Operations;

/// <summary>
/// The immutable result of one restore drill, appended to the store (manifest/drills/ID.json): what was restored, how
/// long each part took, the point recovery reached, and every check with its outcome.
/// </summary>
public sealed record DrillRecord
{
    /// <summary>The drill's id: its start time (sortable) and a random suffix.</summary>
    public required string Id { get; init; }
    /// <summary>When the drill started.</summary>
    public required DateTimeOffset StartTime { get; init; }
    /// <summary>When it ended (server stopped, directory removed).</summary>
    public required DateTimeOffset EndTime { get; init; }
    /// <summary>True when every stage and check passed.</summary>
    public required bool Passed { get; init; }
    /// <summary>The exit code the drill ended with (0 when it passed).</summary>
    public required int ExitCode { get; init; }
    /// <summary>The stage that failed (plan, binaries, restore, start, recovery, connect, catalog, amcheck, check, interrupted); null when it passed.</summary>
    public string? FailedStage { get; init; }
    /// <summary>What failed, in one line; null when it passed.</summary>
    public string? Failure { get; init; }
    /// <summary>The recovery target, as the plan prints it.</summary>
    public required string Target { get; init; }
    /// <summary>The backup restored; null when planning failed.</summary>
    public string? BackupId { get; init; }
    /// <summary>The backup's PostgreSQL version (e.g. 15.10).</summary>
    public string? ServerVersion { get; init; }
    /// <summary>Seconds spent downloading and writing the backup's files.</summary>
    public double? DownloadSeconds { get; init; }
    /// <summary>Seconds from starting the server to the end of recovery (WAL downloaded and replayed).</summary>
    public double? ReplaySeconds { get; init; }
    /// <summary>Seconds from the start of the restore to a server that accepts queries: the restore time an incident would see.</summary>
    public double? RestoreSeconds { get; init; }
    /// <summary>Seconds the whole drill took, checks and clean-up included.</summary>
    public required double TotalSeconds { get; init; }
    /// <summary>The last WAL position replayed.</summary>
    public string? ReachedLsn { get; init; }
    /// <summary>The commit time of the last transaction replayed: how current the restored data is.</summary>
    public DateTimeOffset? ReachedTime { get; init; }
    /// <summary>How old the data at the point reached was when the drill ended, in seconds.</summary>
    public double? DataAgeSeconds { get; init; }
    /// <summary>pg_amcheck's outcome: passed, failed: ..., or skipped: why.</summary>
    public string? Amcheck { get; init; }
    /// <summary>Each --check query with its outcome.</summary>
    public List<DrillCheck> Checks { get; init; } = [];
}

/// <summary>One --check query and its outcome.</summary>
/// <param name="Sql">The query.</param>
/// <param name="Passed">It returned true.</param>
/// <param name="Detail">What it returned instead, or its error.</param>
public sealed record DrillCheck(string Sql, bool Passed, string? Detail);
