namespace CloudArchive.Core;

/// <summary>Process exit codes; the table in README.md is the contract operators script against.</summary>
public enum ExitCode
{
    Ok = 0,
    NotFound = 1,
    Usage = 2,
    RefusedOverwrite = 3,
    StoreUnavailable = 4,
    Corrupt = 5,
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
    Internal = 10,
    /// <summary>Above 125, so PostgreSQL aborts archive recovery instead of treating the segment as absent.</summary>
    AbortRecovery = 200,
}

/// <summary>An error a user can cause or fix; the CLI prints its message as one line and exits with its code.</summary>
public class CloudArchiveException(ExitCode exitCode, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public ExitCode ExitCode { get; } = exitCode;
}
