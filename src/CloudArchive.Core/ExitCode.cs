namespace CloudArchive.Core;

/// <summary>Process exit codes; the table in docs/reference.md (Exit codes) is the contract operators script against.</summary>
public enum ExitCode
{
    /// <summary>Success.</summary>
    Ok = 0,
    /// <summary>What was asked for is not in the store (for wal-fetch: the WAL file is absent, which PostgreSQL expects).</summary>
    NotFound = 1,
    /// <summary>The command line is wrong.</summary>
    Usage = 2,
    /// <summary>The object exists with other content: CloudArchive never overwrites.</summary>
    RefusedOverwrite = 3,
    /// <summary>The store could not be reached or used.</summary>
    StoreUnavailable = 4,
    /// <summary>An object does not match its manifest record or checksum.</summary>
    Corrupt = 5,
    /// <summary>An input file or argument is not what it claims (e.g. not a WAL segment).</summary>
    InvalidInput = 6,
    /// <summary>The store does not honour conditional writes: it cannot be trusted never to overwrite.</summary>
    StoreUnsafe = 7,
    /// <summary>No backup and WAL in the store can reach the recovery target (a gap, or the target is before every backup).</summary>
    NoRecoveryPath = 8,
    /// <summary>
    /// The server cannot be reached or is older than 13, a PostgreSQL program (pg_basebackup, pg_dump, pg_dumpall,
    /// pg_restore, psql) failed, or none new enough for the server (or the dump) is installed; the message says which.
    /// </summary>
    PostgresFailed = 9,
    /// <summary>A bug: an unexpected exception.</summary>
    Internal = 10,
    /// <summary>
    /// A check failed: a restore drill's server came up but a --check query was not true or pg_amcheck found corruption;
    /// status --exit-code reported a problem; or a finding of check does not hold.
    /// </summary>
    CheckFailed = 11,
    /// <summary>Above 125, so PostgreSQL aborts archive recovery instead of treating the segment as absent.</summary>
    AbortRecovery = 200,
}

