using System.Text.Json;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Backup;

/// <summary>Reads what the manifest knows about backups and WAL, and turns a target into a plan.</summary>
public sealed class BackupCatalog(IObjectStore store)
{
    /// <summary>
    /// The backups of every cluster history in the store as a whole (<see cref="ClusterHistories"/>): the newest history
    /// first, the store's first cluster last, each with its system identifier (the first's from its backups).
    /// </summary>
    public static async Task<List<(string? SystemId, List<BackupRecord> Backups)>> ListEveryHistoryAsync(IObjectStore whole, CancellationToken ct)
    {
        var result = new List<(string?, List<BackupRecord>)>();
        foreach (var history in (await ClusterHistories.ListAsync(whole, ct).ConfigureAwait(false)).AsEnumerable().Reverse())
            result.Add((history.SystemId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                await new BackupCatalog(ClusterHistories.Of(whole, history)).ListBackupsAsync(ct).ConfigureAwait(false)));
        var first = await new BackupCatalog(ClusterHistories.First(whole)).ListBackupsAsync(ct).ConfigureAwait(false);
        result.Add((first.FirstOrDefault()?.SystemIdentifier, first));
        return result;
    }

    /// <param name="unreadable">When given, a record that cannot be read (corrupt, forged) is noted here and skipped
    /// instead of failing the whole listing: status shows the rest of the archive.</param>
    public async Task<List<BackupRecord>> ListBackupsAsync(CancellationToken ct, List<string>? unreadable = null)
    {
        var result = new List<BackupRecord>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestBackupPrefix, ct).ConfigureAwait(false))
        {
            if (StoreLayout.BackupIdFromRecordKey(item.Key) is not { } id) continue;
            try
            {
                // An id reaches messages, paths and the restored postgresql.auto.conf: only what backup-push writes.
                if (!ManifestRecords.IsValidId(id))
                    throw new Pipeline.CorruptObjectException($"backup record {item.Key} in {store.Description} is corrupt or forged: its id is not one " +
                        $"backup-push writes");
                result.Add(await ReadBackupAsync(id, ct).ConfigureAwait(false));
            }
            catch (Pipeline.CorruptObjectException e) when (unreadable is not null)
            {
                unreadable.Add(e.Message);
            }
        }
        return result.OrderBy(b => b.StopTime).ToList();
    }

    /// <summary>The record of backup <paramref name="id"/>, checked to name only its own objects.</summary>
    public async Task<BackupRecord> ReadBackupAsync(string id, CancellationToken ct)
    {
        var key = StoreLayout.BackupRecordKey(id);
        var record = await ManifestRecords.ReadAsync(store, key, ManifestJson.Default.BackupRecord, "backup", id, ct, maxBytes: ManifestRecords.MaxBackupRecord)
            .ConfigureAwait(false);
        // A record names the objects restore reads: only this backup's own, never another key of the store.
        var own = StoreLayout.BackupDirectory(id);
        static bool Outside(string? key, string own) => key is not null
            && (!key.StartsWith(own, StringComparison.Ordinal) || key.Split('/').Any(p => p is "" or "." or ".."));
        // PostgreSQL's page size is a power of two from 1 to 32 KiB: anything else would divide the maps by nonsense.
        if (record.BlockSize is { } bs && (bs < 1024 || bs > 32768 || (bs & (bs - 1)) != 0))
            throw new CorruptObjectException($"backup record {key} in {store.Description} is corrupt or forged: block size {bs}");
        if (record.Id != id || record.Bundles.Any(b => Outside(b.Key, own) || Outside(b.MapKey, own)))
            throw new CorruptObjectException($"backup record {key} in {store.Description} is corrupt or forged: it names another backup's id or objects " +
                $"outside {own}");
        return record;
    }

    /// <summary>Plans a restore to <paramref name="target"/> from the manifest (backup-list, restore --dry-run, restore).</summary>
    public async Task<RecoveryPlan> PlanAsync(RecoveryTarget target, string? backupId, CancellationToken ct)
    {
        // One record that does not parse (planted, or cut short) never stops a restore from the others: it is passed over, and said.
        var unreadable = new List<string>();
        var backups = await ListBackupsAsync(ct, unreadable).ConfigureAwait(false);
        // The backup the operator named is not passed over: its record is corrupt, and that is the answer.
        if (backupId is not null and not "latest" && unreadable.FirstOrDefault(u => u.Contains(StoreLayout.BackupRecordKey(backupId), StringComparison.Ordinal))
                is { } named)
            throw new Pipeline.CorruptObjectException(named);
        // A time without a zone is read as PostgreSQL will read it: in the cluster's timezone, which the backups record.
        target = target.WithZone(backups.LastOrDefault(b => b.TimeZone is not null)?.TimeZone);
        RecoveryPlan plan;
        try
        {
            plan = (await LoadPlanningAsync(backups, ct).ConfigureAwait(false)).Plan(target, backupId);
        }
        catch (CloudArchiveException e) when (e.ExitCode == ExitCode.NoRecoveryPath && unreadable.Count > 0)
        {
            // Nothing restores without the records passed over: they are the answer, corrupt or forged.
            throw new Pipeline.CorruptObjectException($"{e.Message}; and {unreadable[0]}", e);
        }
        if (unreadable.Count > 0) plan = plan with { Notes = [.. plan.Notes, .. unreadable.Select(u => $"passed over a record that cannot be read: {u}")] };
        // The end of the archive may be past the last whole segment: what wal-receive stored of the segment in progress.
        if (plan.Target.Kind == TargetKind.EndOfArchive
            && (await new StreamedWal(store).EndsAsync(plan.TargetTimeline, ct).ConfigureAwait(false)).FirstOrDefault() is { } streamed
            && WalFileName.TryParse(plan.LastWalSegment, out var lastWhole)
            && streamed.Segment == WalFileName.ForSegment(plan.TargetTimeline, lastWhole.SegmentNumber(plan.Backup.WalSegmentSize) + 1, plan.Backup.WalSegmentSize))
            plan = plan with { Notes = [.. plan.Notes, $"the archive reaches LSN {streamed.Reach} in {streamed.Segment.Name}, streamed by wal-receive" +
                (streamed.StoredAt is { } storedAt ? $" (stored {storedAt:u})" : "") + ": recovery replays up to there, past the last whole segment"] };
        // "Latest" across a hole is not reachable: recovery would stop at it with an error (wal-fetch exits 200 there).
        if (plan.Target.Kind == TargetKind.EndOfArchive && plan.Gap is { } gap) throw gap;
        // A time after the last WAL recovery can reach: every commit replayed is older (each segment was archived after its
        // commits), so PostgreSQL would replay everything and fail ("recovery ended before configured recovery target was reached").
        if (plan.Target.Time is { } at)
        {
            var last = await new WalArchive(store, 0).ReadRecordAsync(WalFileName.Parse(plan.LastWalSegment), ct).ConfigureAwait(false);
            if (at > last.ArchivedAt)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"the target {at.UtcDateTime:yyyy-MM-dd HH:mm:ss.FFFFFF}Z lies after the end of the " +
                    $"archive: the last WAL recovery can reach from backup {plan.Backup.Id}, {plan.LastWalSegment}, was archived at " +
                    $"{last.ArchivedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z{(plan.Gap is not null ? " (a gap follows it)" : "")}; the window reachable is " +
                    $"{plan.Backup.StopTime.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z .. {last.ArchivedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z");
        }
        return plan;
    }

    /// <summary>What planning reads from the manifest, read once: status plans for every backup from it.</summary>
    internal async Task<Planning> LoadPlanningAsync(List<BackupRecord> backups, CancellationToken ct)
    {
        var segSize = backups.Count > 0 ? backups[^1].WalSegmentSize : 16 * 1024 * 1024;
        var segments = new Dictionary<uint, SortedSet<ulong>>();
        var historyNames = new List<WalFileName>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestWalPrefix, ct).ConfigureAwait(false))
        {
            if (StoreLayout.WalNameFromRecordKey(item.Key) is not { } name) continue;
            if (name.Kind == WalFileKind.History) historyNames.Add(name);
            else if (name.Kind == WalFileKind.Segment)
            {
                if (!segments.TryGetValue(name.Timeline, out var set)) segments[name.Timeline] = set = [];
                set.Add(name.SegmentNumber(segSize));
            }
        }
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        await foreach (var item in store.ListAsync(StoreLayout.WalPrefix, ct).ConfigureAwait(false))
            sizes[Path.GetFileName(item.Key).Replace(".zst", "", StringComparison.Ordinal)] = item.Size;
        var histories = new Dictionary<uint, List<TimelineSwitch>>();
        foreach (var h in historyNames)
            histories[h.Timeline] = TimelineHistory.Parse(await ReadWalTextAsync(h, ct).ConfigureAwait(false));
        return new Planning(backups, segments, histories, sizes);
    }

    private async Task<string> ReadWalTextAsync(WalFileName name, CancellationToken ct) =>
        await new WalArchive(store, 0).ReadTextFileAsync(name, ct).ConfigureAwait(false)
            ?? throw new CloudArchiveException(ExitCode.NotFound, $"{name} is in the manifest but its object is missing from {store.Description}");
}

/// <summary>The manifest's backups, segments, timeline histories and sizes: enough to plan a restore to any target.</summary>
internal sealed record Planning(
    List<BackupRecord> Backups,
    Dictionary<uint, SortedSet<ulong>> Segments,
    Dictionary<uint, List<TimelineSwitch>> Histories,
    Dictionary<string, long> Sizes)
{
    public RecoveryPlan Plan(RecoveryTarget target, string? backupId) => RecoveryPlanner.Plan(Backups, target, backupId, Segments, Histories, Sizes);
}
