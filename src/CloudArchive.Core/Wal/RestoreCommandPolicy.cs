namespace CloudArchive.Core.Wal;

/// <summary>
/// restore_command's exit-code contract. PostgreSQL reads any exit from 1 to 125 as "file not in the
/// archive", which ends archive recovery and promotes at that point; above 125 it stops recovery. So a
/// wal-fetch failure that is not "absent" exits 200 — unless this is a standby (standby.signal), which
/// should fall back to streaming replication: there it exits 1. The CLI applies it to every failure of wal-fetch,
/// parse errors included (the parse result says which command it is).
/// </summary>
public static class RestoreCommandPolicy
{
    /// <param name="pgdata">--pgdata, else the working directory (restore_command runs in the data directory).</param>
    public static ExitCode For(ExitCode failure, string? pgdata)
    {
        if (failure is ExitCode.Ok or ExitCode.NotFound) return failure;
        var dir = pgdata ?? Directory.GetCurrentDirectory();
        var storeSide = failure is ExitCode.StoreUnavailable or ExitCode.Corrupt or ExitCode.Internal or ExitCode.StoreUnsafe;
        if (File.Exists(Path.Combine(dir, "standby.signal")))
        {
            if (!storeSide) return failure;
            Log.Warn("standby.signal present: exiting 1 so the standby falls back to streaming replication");
            return ExitCode.NotFound;
        }
        // Inside a data directory in archive recovery even a misconfiguration (swapped %f %p, no store)
        // must stop recovery rather than look like the end of the archive.
        var inRecovery = File.Exists(Path.Combine(dir, "PG_VERSION")) && File.Exists(Path.Combine(dir, "recovery.signal"));
        if (!storeSide && !inRecovery) return failure;
        Log.Error($"exiting {(int)ExitCode.AbortRecovery} so PostgreSQL stops recovery instead of ending it at the wrong point; fix the cause and start " +
            $"the server again");
        return ExitCode.AbortRecovery;
    }
}
