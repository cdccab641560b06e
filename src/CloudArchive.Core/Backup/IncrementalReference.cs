using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The backup a diff (the newest full) or incr (the newest backup) builds on: of this cluster, major and page size, with
/// a chain that restores. Without one the backup is full, and says so.
/// </summary>
public static class IncrementalReference
{
    /// <summary>
    /// The chain <paramref name="type"/> builds on, for a cluster of <paramref name="systemIdentifier"/> at
    /// <paramref name="serverVersionNum"/> with pages of <paramref name="blockSize"/>; null: take a full backup.
    /// </summary>
    public static async Task<ChainMaps?> ChooseAsync(IObjectStore store, string type, string systemIdentifier, int serverVersionNum, int blockSize,
        CancellationToken ct)
    {
        if (type == BackupKinds.Full) return null;
        var unreadable = new List<string>();
        var all = await new BackupCatalog(store).ListBackupsAsync(ct, unreadable).ConfigureAwait(false);
        foreach (var u in unreadable) Log.Warn($"skipped an unreadable backup record: {u}");
        var mine = all.Where(b => b.SystemIdentifier == systemIdentifier && b.ServerVersionNum / 10000 == serverVersionNum / 10000
            && b.BlockSize == blockSize).ToList();
        var candidate = type == BackupKinds.Diff ? mine.LastOrDefault(b => b.Kind == BackupKinds.Full) : mine.LastOrDefault();
        if (candidate is null)
        {
            Log.Warn($"--type {type}: {store.Description} has no {(type == BackupKinds.Diff ? "full " : "")}backup of this cluster " +
                "with block maps to build on; taking a full backup");
            return null;
        }
        BackupChain chain;
        try
        {
            chain = BackupChain.Resolve(candidate, all);
        }
        catch (CloudArchiveException e) when (e.ExitCode == ExitCode.NoRecoveryPath)
        {
            Log.Warn($"--type {type}: cannot build on {candidate.Id} ({e.Message}); taking a full backup");
            return null;
        }
        return new ChainMaps(store, chain, $"; an --type {type} backup cannot build on it: run verify, and take a full backup (--type full)");
    }
}
