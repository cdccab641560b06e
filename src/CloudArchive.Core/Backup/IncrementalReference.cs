using CloudArchive.Core.Manifest;
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
    /// <param name="endedBy">Only backups that ended by then are built on (the new backup's start: the store's records are
    /// read while its start checkpoint runs, and a backup may not build on one that ended after it began); null: any.</param>
    public static async Task<ChainMaps?> ChooseAsync(IObjectStore store, string type, string systemIdentifier, int serverVersionNum, int blockSize,
        CancellationToken ct, DateTimeOffset? endedBy = null)
    {
        if (type == BackupKinds.Full) return null;
        // Newest first (an id begins with its start time, to the second), a few at a time, until one fits; then only its
        // chain's records.
        // Reading every record first took 0.3-0.4 s of each incremental on a store of 50 backups.
        var catalog = new BackupCatalog(store);
        var ids = new List<string>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestBackupPrefix, ct).ConfigureAwait(false))
            if (StoreLayout.BackupIdFromRecordKey(item.Key) is { } id)
            {
                if (ManifestRecords.IsValidId(id)) ids.Add(id);
                else Log.Warn($"skipped an unreadable backup record: {item.Key} in {store.Description} is corrupt or forged: its id is not one " +
                    "backup-push writes");
            }
        ids.Sort((a, b) => string.CompareOrdinal(b, a));
        var read = new Dictionary<string, BackupRecord>(StringComparer.Ordinal);
        bool Fits(BackupRecord b) => b.SystemIdentifier == systemIdentifier && b.ServerVersionNum / 10000 == serverVersionNum / 10000
            && b.BlockSize == blockSize && (endedBy is null || b.StopTime <= endedBy) && (type != BackupKinds.Diff || b.Kind == BackupKinds.Full);
        BackupRecord? candidate = null;
        var at = 0;
        while (at < ids.Count && candidate is null)
        {
            var batch = await Task.WhenAll(ids.Skip(at).Take(ReadAtOnce).Select(id => TryReadAsync(catalog, id, ct))).ConfigureAwait(false);
            at += batch.Length;
            foreach (var b in batch.OfType<BackupRecord>()) read[b.Id] = b;
            candidate = batch.FirstOrDefault(b => b is not null && Fits(b));
        }
        if (candidate is not null)
        {
            // Ids tell the start to the second only: of the backups that started in the candidate's second, the one that ended last.
            var second = Second(candidate.Id);
            for (; at < ids.Count && Second(ids[at]) == second; at++)
                if (await TryReadAsync(catalog, ids[at], ct).ConfigureAwait(false) is { } same) read[same.Id] = same;
            candidate = read.Values.Where(b => Second(b.Id) == second && Fits(b)).OrderByDescending(b => b.StopTime)
                .ThenByDescending(b => b.Id, StringComparer.Ordinal).First();
        }
        if (candidate is null)
        {
            Log.Warn($"--type {type}: {store.Description} has no {(type == BackupKinds.Diff ? "full " : "")}backup of this cluster " +
                "with block maps to build on; taking a full backup");
            return null;
        }
        // The records its chain names (a missing or unreadable one breaks it, below).
        for (var (member, steps) = (candidate, 0); member.Kind != BackupKinds.Full && member.Reference is { } next && steps < 10_000; steps++)
        {
            if (!read.TryGetValue(next, out var found))
            {
                if (!ids.Contains(next) || await TryReadAsync(catalog, next, ct).ConfigureAwait(false) is not { } loaded) break;
                read[next] = found = loaded;
            }
            member = found;
        }
        var all = read.Values.OrderBy(b => b.StopTime).ToList();
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

    private const int ReadAtOnce = 8;

    private static string Second(string id) => id.Split('-')[0];

    /// <summary>The record of <paramref name="id"/>; null, with a warning, when it cannot be read (corrupt, forged).</summary>
    private static async Task<BackupRecord?> TryReadAsync(BackupCatalog catalog, string id, CancellationToken ct)
    {
        try
        {
            return await catalog.ReadBackupAsync(id, ct).ConfigureAwait(false);
        }
        catch (Pipeline.CorruptObjectException e)
        {
            Log.Warn($"skipped an unreadable backup record: {e.Message}");
            return null;
        }
    }
}
