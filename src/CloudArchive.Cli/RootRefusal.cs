using CloudArchive.Native;

namespace CloudArchive.Cli;

/// <summary>
/// Which commands write to the store or a cluster, and so refuse to run as root (as pgBackRest does, but for restore):
/// what root writes into a local store, a spool or pg_wal belongs to root, and the cluster's user, who runs
/// archive_command and everything else, can then neither read it nor remove it. restore may run as root: it gives
/// every file it writes to the data directory's owner (RestoredOwnership). Every command is listed; one that is not
/// fails at start-up, so a new command is classified before it runs.
/// </summary>
internal static class RootRefusal
{
    private static readonly Dictionary<string, bool> WritesStoreOrCluster = new(StringComparer.Ordinal)
    {
        // Write to the store, a spool, or a cluster (its pg_wal, its databases): refused for root.
        ["wal-push"] = true,
        ["wal-receive"] = true, // writes WAL into the store, and its spool
        [Background.PushWorkerCommand] = true,
        ["wal-fetch"] = true, // into pg_wal, its prefetch spool, and a restore's lease in the store
        [Background.PrefetchWorkerCommand] = true,
        [Background.AgentCommand] = true,
        ["backup-push"] = true,
        ["dump-push"] = true,
        ["dump-restore"] = true,
        ["store-init"] = true,
        ["store-check"] = true, // writes and deletes probe objects
        ["store-upgrade"] = true, // writes a cluster history record
        ["check"] = true, // switches WAL on the server and writes a probe object
        ["expire"] = true,
        ["drill"] = true, // writes its record; its server refuses root anyway
        ["copy"] = true, // writes into the second store
        // Read the store, or write only what the user names (a key file, a dump file, stdout): allowed for root.
        ["restore"] = false,
        ["status"] = false,
        ["backup-list"] = false,
        ["wal-list"] = false,
        ["dump-list"] = false,
        ["dump-fetch"] = false,
        ["plan"] = false,
        ["verify"] = false,
        ["metrics"] = false,
        ["config"] = false,
        ["key-generate"] = false,
    };

    /// <summary>Whether <paramref name="command"/> writes to the store or a cluster; throws for a command this table does not list.</summary>
    public static bool Writes(string command) => WritesStoreOrCluster.TryGetValue(command, out var writes) ? writes
        : throw new InvalidOperationException($"command {command} is not listed in RootRefusal: say whether it writes to the store or a cluster");

    /// <summary>The one-line refusal when this process is root and <paramref name="command"/> writes; else null.</summary>
    public static string? Refusal(string command) => Writes(command) && Posix.EffectiveUserId == 0
        ? $"{command} must not run as root (the cluster's user could not read or remove what root writes): run it as the PostgreSQL cluster's " +
            $"owner, for example: runuser -u postgres -- cloudarchive {command} ..."
        : null;
}
