using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Operations;

/// <summary>What expire keeps.</summary>
/// <param name="RetainFull">Keep this many newest full backups, with the diff and incr backups that build on them.</param>
/// <param name="RetainDays">Keep the backups younger than this many days.</param>
/// <param name="DryRun">Only report what would be removed.</param>
/// <param name="RetainDumps">Keep this many newest dumps per database; null keeps them all.</param>
public sealed record ExpirePolicy(int? RetainFull, int? RetainDays, bool DryRun, int? RetainDumps = null);

/// <summary>What expire did.</summary>
/// <param name="RetainedBackups">The backups kept, by id.</param>
/// <param name="Removed">The keys removed (or, in a dry run, that would be).</param>
/// <param name="Refused">The keys the store refused to delete (object lock, immutability).</param>
public sealed record ExpireReport(IReadOnlyList<string> RetainedBackups, IReadOnlyList<string> Removed, IReadOnlyList<string> Refused)
{
    /// <summary>What interrupted writes left and nothing listed: temp files, unfinished uploads, unrecorded backup and dump objects.</summary>
    public IReadOnlyList<string> Abandoned { get; init; } = [];

    /// <summary>Backups kept although the policy would not: a restore in progress needs them (with its lease).</summary>
    public IReadOnlyList<string> Leased { get; init; } = [];

    /// <summary>Backup and dump records that do not fit the archive (from the future, not restorable): not counted, one line each.</summary>
    public IReadOnlyList<string> Misfits { get; init; } = [];

    /// <summary>Objects the policy would remove that are locked (--lock-days): kept, a later run removes them once their date has passed.</summary>
    public IReadOnlyList<LockedObject> Locked { get; init; } = [];

    /// <summary>"keeps N objects locked until DATE" (the latest date; the earliest too when they differ); null when none is locked.</summary>
    public string? LockedSummary
    {
        get
        {
            if (Locked.Count == 0) return null;
            var dates = Locked.Where(l => l.Until is not null).Select(l => l.Until!.Value).Order().ToList();
            if (dates.Count == 0) return $"keeps {Locked.Count} objects the store refused to delete (locked, date not told): a later run tries again";
            var range = dates[0] == dates[^1] ? $"until {dates[^1].UtcDateTime:u}" : $"until {dates[^1].UtcDateTime:u} (the first from {dates[0].UtcDateTime:u})";
            return $"keeps {Locked.Count} objects locked {range}: a later run removes them once their lock has passed";
        }
    }
}

/// <summary>An object expire keeps because it is locked.</summary>
/// <param name="Key">The object's key.</param>
/// <param name="Until">Its retain-until date; null when the store refused the delete without telling it.</param>
public sealed record LockedObject(string Key, DateTimeOffset? Until);

/// <summary>
/// expire: removes the backups the policy does not retain (never one a retained backup builds on) and the WAL no retained backup needs — every
/// WAL file older than the start of the oldest retained backup. Timeline history files are always kept.
/// A manifest record goes before its data, so nothing half-removed is ever listed. Objects the store
/// refuses to delete (object lock, immutability) are reported and skipped; the rest carries on.
/// </summary>
public sealed class ArchiveExpirer(IObjectStore store)
{
    private readonly List<LockedObject> _locked = [];
    private Task<bool>? _mayHoldLocks;

    /// <summary>
    /// Whether any object may be locked, asked of the store once a run: a bucket without Object Lock (a container without
    /// immutability support) holds no lock, so no object's date is read. Credentials that may not ask: every object's is.
    /// </summary>
    private Task<bool> MayHoldLocksAsync() => _mayHoldLocks ??= AskAsync();

    private async Task<bool> AskAsync()
    {
        if (store.RetentionProbe is not { } probe) return false;
        try
        {
            return (await probe.DescribeAsync(CancellationToken.None).ConfigureAwait(false)).LocksSupported != false;
        }
        catch (StoreUnavailableException e)
        {
            Log.Info($"expire: cannot ask {store.Description} whether it holds locks ({e.Message}); reading each object's lock before removing it");
            return true;
        }
    }

    /// <summary>A write older than this that left no record was interrupted: it is never going to be listed.</summary>
    public static readonly TimeSpan AbandonedAfter = TimeSpan.FromDays(1);

    /// <summary>Backup and dump objects without a record, whose id says they started this long ago: no backup runs that long.</summary>
    public static readonly TimeSpan UnrecordedAfter = TimeSpan.FromDays(7);

    /// <summary>expire with a second store (--store-2): each store by its own policy, in turn, each with its own report.</summary>
    public static async Task<IReadOnlyList<(string Store, ExpirePolicy Policy, ExpireReport Report)>> ExpireEachAsync(
        IReadOnlyList<(IObjectStore Store, ExpirePolicy Policy)> stores, CancellationToken ct)
    {
        var reports = new List<(string, ExpirePolicy, ExpireReport)>();
        foreach (var (store, policy) in stores)
            reports.Add((store.Description, policy, await new ArchiveExpirer(store).ExpireAsync(policy, ct).ConfigureAwait(false)));
        return reports;
    }

    /// <summary>Removes what <paramref name="policy"/> does not retain, records first, then what interrupted writes left.</summary>
    public async Task<ExpireReport> ExpireAsync(ExpirePolicy policy, CancellationToken ct)
    {
        var report = await ExpireRecordedAsync(policy, ct).ConfigureAwait(false);
        var abandoned = new List<string>(
            await store.RemoveAbandonedWritesAsync(DateTimeOffset.UtcNow - AbandonedAfter, policy.DryRun, ct).ConfigureAwait(false));
        var refused = new List<string>(report.Refused);
        await RemoveUnrecordedAsync(StoreLayout.BackupPrefix, StoreLayout.BackupRecordKey, policy, abandoned, refused, ct).ConfigureAwait(false);
        await RemoveUnrecordedAsync(StoreLayout.DumpPrefix, StoreLayout.DumpRecordKey, policy, abandoned, refused, ct).ConfigureAwait(false);
        return report with { Refused = refused, Abandoned = abandoned, Locked = [.. _locked] };
    }

    /// <summary>Objects under <paramref name="prefix"/>ID/ whose ID has no record and started before <see
    /// cref="UnrecordedAfter"/>: a killed backup's or dump's.</summary>
    private async Task RemoveUnrecordedAsync(string prefix, Func<string, string> recordKey, ExpirePolicy policy,
        List<string> abandoned, List<string> refused, CancellationToken ct)
    {
        var byId = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        await foreach (var item in store.ListAsync(prefix, ct).ConfigureAwait(false))
        {
            var rest = item.Key[prefix.Length..];
            var slash = rest.IndexOf('/');
            if (slash <= 0) continue;
            var id = rest[..slash];
            if (!byId.TryGetValue(id, out var keys)) byId[id] = keys = [];
            keys.Add(item.Key);
        }
        var cutoff = DateTimeOffset.UtcNow - UnrecordedAfter;
        foreach (var (id, keys) in byId)
        {
            if (StoreLayout.IdTime(id) is not { } started || started >= cutoff) continue;
            if (await store.GetInfoAsync(recordKey(id), ct).ConfigureAwait(false) is not null) continue;
            foreach (var key in keys)
                await RemoveAsync(key, policy, abandoned, refused, ct).ConfigureAwait(false);
        }
    }

    private async Task<ExpireReport> ExpireRecordedAsync(ExpirePolicy policy, CancellationToken ct)
    {
        if (policy.RetainFull is null && policy.RetainDays is null && policy.RetainDumps is null)
            throw new CloudArchiveException(ExitCode.Usage, $"expire needs --retain-full N, --retain-days D or --retain-dumps N (or the retention settings {Configuration.SettingsTable.RetainFull.Variable}, " +
                $"{Configuration.SettingsTable.RetainDays.Variable}, {Configuration.SettingsTable.RetainDumps.Variable})");
        var removed = new List<string>();
        var refused = new List<string>();
        var dumpMisfits = new List<string>();
        if (policy.RetainDumps is { } keepDumps)
        {
            // Per database (and the globals on their own): the newest N stay.
            var dumps = await new Dump.DumpCatalog(store).ListAsync(ct).ConfigureAwait(false);
            foreach (var d in dumps)
                if (ManifestRecords.TimeProblem(d.StartTime, d.EndTime, DateTimeOffset.UtcNow) is { } why)
                    dumpMisfits.Add($"dump {d.Id}: {why}; not counted, not removed");
            foreach (var group in dumps.Where(d => ManifestRecords.TimeProblem(d.StartTime, d.EndTime, DateTimeOffset.UtcNow) is null)
                .GroupBy(d => d.Kind + "/" + d.Database))
                foreach (var d in group.OrderByDescending(d => d.EndTime).Skip(keepDumps))
                    if (await RemoveAsync(StoreLayout.DumpRecordKey(d.Id), policy, removed, refused, ct).ConfigureAwait(false))
                        await RemoveAsync(d.Key, policy, removed, refused, ct).ConfigureAwait(false);
        }
        if (policy.RetainFull is null && policy.RetainDays is null)
            return new ExpireReport([], removed, refused) { Misfits = dumpMisfits };
        var catalog = new BackupCatalog(store);
        var all = await catalog.ListBackupsAsync(ct).ConfigureAwait(false);
        // Records are judged as a restore would: only a backup whose times fit and whose own WAL is in the archive counts. One
        // planted record (dated 2999, or starting at the end of WAL) must never make real backups and their WAL look expendable.
        var planning = await catalog.LoadPlanningAsync(all, ct).ConfigureAwait(false);
        var misfits = dumpMisfits;
        var backups = new List<BackupRecord>();
        foreach (var b in all)
        {
            if (ManifestRecords.TimeProblem(b.StartTime, b.StopTime, DateTimeOffset.UtcNow) is { } why)
                misfits.Add($"backup {b.Id}: {why}; not counted, not removed");
            else if (Restores(planning, b) is { } broken)
                misfits.Add($"backup {b.Id} does not restore ({broken}); not counted");
            else
                backups.Add(b);
        }
        if (backups.Count == 0 && all.Count > 0)
            throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"expire removes nothing: no backup in {store.Description} restores ({misfits[0]})");
        var newestFirst = backups.OrderByDescending(b => b.StopTime).ToList();
        // --retain-full N counts full backups: the N newest, and every diff and incr whose chain leads to one of them.
        var keptFull = policy.RetainFull is { } fulls ? newestFirst.Where(b => b.Kind == BackupKinds.Full).Take(fulls).Select(b => b.Id).ToHashSet(StringComparer.Ordinal)
            : [];
        var retained = newestFirst.Where(b =>
            (policy.RetainFull is not null && ChainOf(b, backups).Any(m => keptFull.Contains(m.Id))) ||
            (policy.RetainDays is { } d && b.StopTime >= DateTimeOffset.UtcNow.AddDays(-d))).ToList();
        // Never leave the archive without a backup: the newest one always stays.
        if (retained.Count == 0 && newestFirst.Count > 0) retained.Add(newestFirst[0]);
        // A restore in progress keeps its backup until it has replayed past the backup's end, and the WAL from where it is.
        var live = await RestoreLease.LiveAsync(store, DateTimeOffset.UtcNow, ct).ConfigureAwait(false);
        var leased = new List<string>();
        foreach (var b in newestFirst.Except(retained).ToList())
            if (live.FirstOrDefault(l => l.BackupId == b.Id && Before(l.Position, b.StopWalFile, b.WalSegmentSize)) is { } lease)
            {
                retained.Add(b);
                leased.Add($"{b.Id} (lease {lease.LeaseId}, renewed {lease.At:u} at {lease.Position})");
            }
        if (retained.Count == 0)
            return new ExpireReport([], removed, refused);
        // A kept backup keeps every backup it builds on.
        retained = retained.SelectMany(b => ChainOf(b, backups)).Distinct().ToList();

        var keepFromSeg = retained.Min(b => Lsn.Parse(b.StartLsn).Value / (ulong)b.WalSegmentSize);
        foreach (var l in live) keepFromSeg = Math.Min(keepFromSeg, WalFileName.Parse(l.Position).SegmentNumber(retained[0].WalSegmentSize));
        // What is kept must restore: every kept backup planned again on the WAL that stays, before anything is removed.
        var after = planning with
        {
            Backups = retained,
            Segments = planning.Segments.ToDictionary(t => t.Key, t => new SortedSet<ulong>(t.Value.Where(n => n >= keepFromSeg))),
        };
        foreach (var b in retained)
            if (Restores(after, b) is { } broken)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"expire removes nothing: backup {b.Id} would not restore from what is kept " +
                    $"({broken})");
        // A backup that does not restore but ends before the newest kept one is of no use: it goes too (never one that does not fit in time).
        var newestKept = retained.Max(b => b.StopTime);
        var removable = newestFirst.Concat(all.Where(b => !backups.Contains(b) && ManifestRecords.TimeProblem(b.StartTime, b.StopTime,
            DateTimeOffset.UtcNow) is null && b.StopTime < newestKept)).OrderByDescending(b => b.StopTime).ToList();
        // Newest first: a backup goes before those it builds on, so none is ever listed without its reference.
        foreach (var b in removable.Except(retained).ToList())
        {
            if (retained.Contains(b)) continue;
            // Data only once its record is gone: a backup whose record the store keeps is still listed, so it keeps
            // its bundles, the backups it builds on and the WAL it needs.
            if (await RemoveAsync(StoreLayout.BackupRecordKey(b.Id), policy, removed, refused, ct).ConfigureAwait(false))
                foreach (var bundle in b.Bundles)
                {
                    await RemoveAsync(bundle.Key, policy, removed, refused, ct).ConfigureAwait(false);
                    if (bundle.MapKey is { } map) await RemoveAsync(map, policy, removed, refused, ct).ConfigureAwait(false);
                }
            else
                foreach (var m in ChainOf(b, backups).Where(m => !retained.Contains(m))) retained.Add(m);
        }

        // WAL older than every retained backup's start is needed by none of them.
        var segSize = retained[0].WalSegmentSize;
        var keepFrom = retained.Min(b => Lsn.Parse(b.StartLsn).Value / (ulong)segSize);
        foreach (var l in live) keepFrom = Math.Min(keepFrom, WalFileName.Parse(l.Position).SegmentNumber(segSize));
        var old = new List<WalFileName>();
        var whole = new HashSet<WalFileName>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestWalPrefix, ct).ConfigureAwait(false))
            if (StoreLayout.WalNameFromRecordKey(item.Key) is { HasSegmentNumber: true } n)
            {
                whole.Add(n);
                if (n.SegmentNumber(segSize) < keepFrom) old.Add(n);
            }
        foreach (var n in old)
            if (await RemoveAsync(StoreLayout.WalRecordKey(n), policy, removed, refused, ct).ConfigureAwait(false))
                await RemoveAsync(StoreLayout.WalObjectKey(n), policy, removed, refused, ct).ConfigureAwait(false);
        // wal-receive's pieces: of a segment now archived whole (a receiver killed before removing them), or older than the WAL kept.
        foreach (var streamed in await new StreamedWal(store).ListAsync(null, ct).ConfigureAwait(false))
            if (whole.Contains(streamed.Segment) || streamed.Segment.SegmentNumber(segSize) < keepFrom)
                await foreach (var item in store.ListAsync(StoreLayout.StreamedSegmentPrefix(streamed.Segment), ct).ConfigureAwait(false))
                    await RemoveAsync(item.Key, policy, removed, refused, ct).ConfigureAwait(false);
        // Renewals of leases that ended (no renewal within the TTL) tell nothing any more.
        var cutoff = DateTimeOffset.UtcNow - RestoreLease.Ttl;
        var stale = new List<string>();
        await foreach (var item in store.ListAsync(StoreLayout.LeasePrefix, ct).ConfigureAwait(false))
            if (RestoreLease.Parse(item.Key) is { } r && r.At < cutoff && live.All(l => l.LeaseId != r.LeaseId)) stale.Add(item.Key);
        foreach (var key in stale) await RemoveAsync(key, policy, removed, refused, ct).ConfigureAwait(false);
        return new ExpireReport(retained.OrderByDescending(b => b.StopTime).Select(b => b.Id).ToList(), removed, refused) { Leased = leased, Misfits = misfits };
    }

    /// <summary>Why <paramref name="backup"/> does not restore (its chain, its own WAL from start to consistency); null when it does.</summary>
    private static string? Restores(Planning planning, BackupRecord backup)
    {
        try
        {
            planning.Plan(new RecoveryTarget(TargetKind.Immediate, null, "current"), backup.Id);
            return null;
        }
        catch (CloudArchiveException e) when (e.ExitCode is ExitCode.NoRecoveryPath or ExitCode.Corrupt)
        {
            return e.Message;
        }
    }

    /// <summary>The backup and those it builds on, as far as they are in the store.</summary>
    private static List<BackupRecord> ChainOf(BackupRecord backup, IReadOnlyList<BackupRecord> all)
    {
        var chain = new List<BackupRecord> { backup };
        for (var b = backup; b.Reference is { } r && all.FirstOrDefault(x => x.Id == r) is { } next && !chain.Contains(next); b = next)
            chain.Add(next);
        return chain;
    }

    private static bool Before(string position, string stopWalFile, long segmentSize) =>
        WalFileName.Parse(position).SegmentNumber(segmentSize) <= WalFileName.Parse(stopWalFile).SegmentNumber(segmentSize);

    /// <summary>Deletes (or, dry, lists) one object; false when the store refused, so what depends on it stays.</summary>
    private async Task<bool> RemoveAsync(string key, ExpirePolicy policy, List<string> removed, List<string> refused, CancellationToken ct)
    {
        // A locked object is never asked to go before its date (the store would refuse, or in governance mode a holder of the
        // bypass right might not): it is kept, said with its date, and what depends on it stays with it.
        if (await MayHoldLocksAsync().ConfigureAwait(false) && await store.GetInfoAsync(key, ct).ConfigureAwait(false) is { LockedUntil: { } until }
            && until > DateTimeOffset.UtcNow)
        {
            _locked.Add(new LockedObject(key, until));
            return false;
        }
        if (policy.DryRun)
        {
            removed.Add(key);
            return true;
        }
        try
        {
            if (await store.DeleteAsync(key, ct).ConfigureAwait(false))
            {
                removed.Add(key);
                Log.Info($"expire: removed {key}");
            }
            return true;
        }
        catch (ObjectLockedException e)
        {
            _locked.Add(new LockedObject(key, e.Until));
        }
        catch (StoreUnavailableException e)
        {
            refused.Add($"{key}: {e.Message}");
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            refused.Add($"{key}: {e.Message}");
        }
        return false;
    }
}
