using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Operations;

/// <summary>The span point-in-time recovery can reach.</summary>
/// <param name="Earliest">The stop time of the oldest restorable backup.</param>
/// <param name="EarliestBackup">That backup's id.</param>
/// <param name="Latest">When the newest WAL reachable without a gap was archived.</param>
/// <param name="LatestSegment">That segment.</param>
/// <param name="LatestTimeline">Its timeline.</param>
public sealed record PitrWindow(DateTimeOffset Earliest, string EarliestBackup, DateTimeOffset Latest, string LatestSegment, uint LatestTimeline);

/// <summary>What status prints.</summary>
/// <param name="Store">The store's description.</param>
/// <param name="Backups">Every recorded backup, oldest first.</param>
/// <param name="Dumps">Every recorded dump, oldest first.</param>
/// <param name="Wal">The archived WAL per timeline, with gaps.</param>
/// <param name="LastArchived">The WAL file archived last (by archive time, whatever its timeline); null when none.</param>
/// <param name="LastArchivedAt">When it was archived.</param>
/// <param name="Window">The point-in-time recovery window; null when no backup is restorable.</param>
/// <param name="Problems">What an operator must fix, one line each.</param>
public sealed record StatusReport(
    string Store,
    IReadOnlyList<BackupRecord> Backups,
    IReadOnlyList<Dump.DumpRecord> Dumps,
    WalInventory Wal,
    string? LastArchived,
    DateTimeOffset? LastArchivedAt,
    PitrWindow? Window,
    IReadOnlyList<string> Problems)
{
    /// <summary>Backups that cannot be restored from this store, by id, with the reason.</summary>
    public IReadOnlyDictionary<string, string> Unrestorable { get; init; } = new Dictionary<string, string>();

    /// <summary>Backups whose records do not fit the archive (from the future): problems, never the newest.</summary>
    public IReadOnlySet<string> Misfits { get; init; } = new HashSet<string>();

    /// <summary>Each timeline's last archived segment and when it was archived.</summary>
    public IReadOnlyList<(uint Timeline, string Segment, DateTimeOffset At, string? PushedBy)> LastPerTimeline { get; init; } = [];

    /// <summary>Per timeline, how far wal-receive's pieces of the segment in progress reach (past the last whole segment).</summary>
    public IReadOnlyList<StreamedEnd> Streamed { get; init; } = [];

    /// <summary>The host that pushed the WAL file archived last (null: an older record, or none).</summary>
    public string? LastPushedBy { get; init; }

    /// <summary>What the archived WAL takes in the store (its objects' stored sizes).</summary>
    public long WalStoredBytes { get; init; }

    /// <summary>The newest dump whose record fits; null when there is none.</summary>
    public Dump.DumpRecord? NewestDump => Dumps.FirstOrDefault(d => ManifestRecords.TimeProblem(d.StartTime, d.EndTime, DateTimeOffset.UtcNow) is null);

    /// <summary>The newest backup whose record fits; null when there is none.</summary>
    public BackupRecord? NewestBackup => Backups.LastOrDefault(b => !Misfits.Contains(b.Id));

    /// <summary>
    /// The archive keys the records in use are encrypted with (each backup's record and the newest WAL record), with
    /// how many; "none" counts records written without encryption. Empty when there are no records.
    /// </summary>
    public IReadOnlyDictionary<string, int> Keys { get; init; } = new Dictionary<string, int>();

    /// <summary>The newest restore drill's record; null when no drill was recorded (or its record does not parse: a problem line).</summary>
    public DrillRecord? LastDrill { get; init; }

    /// <summary>The lock horizon of the records read (--lock-days): the earliest and latest retain-until, or none.</summary>
    public LockHorizon Locks { get; init; } = new();

    /// <summary>What the second store (--store-2) lacks of this one; null without a second store.</summary>
    public SecondStoreReport? SecondStore { get; init; }
}

/// <summary>
/// status: the archive at a glance, from the manifest alone (no data is downloaded): backups, WAL ranges
/// with gaps, the last archived segment and its age, and the window point-in-time recovery can reach.
/// </summary>
public sealed class ArchiveStatus(IObjectStore store)
{
    // Every record read adds its lock to the horizon status shows.
    private readonly LockWatchingStore store = new(store, new LockHorizon());

    /// <summary>The retention policy a scheduled expire applies (the settings); null: none is configured.</summary>
    public ExpirePolicy? Retention { get; init; }

    /// <summary>The two stores to compare (--store-2); null: one store.</summary>
    public SecondStoreProbe? Second { get; init; }

    /// <summary>
    /// More backups in the store than the retention policy keeps, with a margin of a day: expire is not running (the store
    /// then grows forever). Null when the store is within the policy.
    /// </summary>
    public static string? RetentionProblem(ExpirePolicy policy, IReadOnlyList<BackupRecord> backups, DateTimeOffset now)
    {
        var fulls = backups.Where(b => b.Kind == BackupKinds.Full).OrderByDescending(b => b.StopTime).ToList();
        if (policy.RetainFull is { } n && fulls.Count > n + 1)
            return $"retention: {fulls.Count} full backups are in the store, the policy keeps {n} ({Configuration.SettingsTable.RetainFull.Variable}): is expire scheduled?";
        // The oldest full backup is past the policy while a newer full backup is too: expire would have removed it.
        if (policy.RetainDays is { } d && policy.RetainFull is null && fulls.Count > 1 && fulls[1].StopTime < now.AddDays(-d - 1))
            return $"retention: full backup {fulls[^1].Id} ended {fulls[^1].StopTime:u}, older than the {d} days the policy keeps " +
                $"({Configuration.SettingsTable.RetainDays.Variable}) and not needed: is expire scheduled?";
        return null;
    }

    /// <summary>Reads the manifest and summarises it.</summary>
    public async Task<StatusReport> ReadAsync(CancellationToken ct)
    {
        var catalog = new BackupCatalog(store);
        var wal = new WalArchive(store, 0);
        var problems = new List<string>();
        // The whole archive, always: an unreadable record is a problem line, not the end of the report.
        var backups = await catalog.ListBackupsAsync(ct, problems).ConfigureAwait(false);
        var inventory = await wal.ListAsync(ct).ConfigureAwait(false);
        // Pieces of a segment that is archived whole meanwhile are left-overs (a receiver killed before removing them), not an end.
        var streamed = (await new StreamedWal(store).EndsAsync(null, ct).ConfigureAwait(false))
            .Where(e => inventory.Timelines.FirstOrDefault(t => t.Timeline == e.Segment.Timeline) is not { Ranges.Count: > 0 } t
                || string.CompareOrdinal(e.Segment.Name, t.Ranges[^1].Last) > 0)
            .ToList();
        var dumps = (await new Dump.DumpCatalog(store).ListAsync(ct).ConfigureAwait(false)).OrderByDescending(d => d.EndTime).ToList();
        foreach (var d in dumps)
            if (ManifestRecords.TimeProblem(d.StartTime, d.EndTime, DateTimeOffset.UtcNow) is { } misfit)
                problems.Add($"dump {d.Id} does not fit the archive: {misfit}");
        // The newest dump is the newest whose times fit.
        dumps = dumps.OrderBy(d => ManifestRecords.TimeProblem(d.StartTime, d.EndTime, DateTimeOffset.UtcNow) is null ? 0 : 1).ThenByDescending(d => d.EndTime)
            .ToList();

        // The newest archived WAL is the one archived last, not the highest timeline's: a restored copy that archived a
        // timeline of its own into this store and then stopped must not hide the production timeline that goes on.
        string? last = null;
        DateTimeOffset? lastAt = null;
        string? lastBy = null;
        var lastPerTimeline = new List<(uint Timeline, string Segment, DateTimeOffset At, string? PushedBy)>();
        foreach (var t in inventory.Timelines.Where(t => t.Ranges.Count > 0))
        {
            var record = await wal.ReadRecordAsync(WalFileName.Parse(t.Ranges[^1].Last), ct).ConfigureAwait(false);
            lastPerTimeline.Add((t.Timeline, t.Ranges[^1].Last, record.ArchivedAt, record.PushedBy));
            if (lastAt is null || record.ArchivedAt > lastAt) (last, lastAt, lastBy) = (t.Ranges[^1].Last, record.ArchivedAt, record.PushedBy);
        }

        // Each backup is restorable when its own WAL reaches consistency; the window runs from the end of the oldest
        // restorable backup to how far replay goes from the newest restorable one.
        var planning = await catalog.LoadPlanningAsync(backups, ct).ConfigureAwait(false);
        var unrestorable = new Dictionary<string, string>(StringComparer.Ordinal);
        var misfits = new HashSet<string>(StringComparer.Ordinal);
        var now = DateTimeOffset.UtcNow;
        foreach (var b in backups)
        {
            // A record whose times do not fit (from the future) is a problem, never the newest backup or the window's end.
            if (ManifestRecords.TimeProblem(b.StartTime, b.StopTime, now) is { } misfit)
            {
                misfits.Add(b.Id);
                unrestorable[b.Id] = $"its record does not fit: {misfit}";
                problems.Add($"backup {b.Id} does not fit the archive: {misfit}");
                continue;
            }
            try
            {
                planning.Plan(new RecoveryTarget(TargetKind.Immediate, null, "current"), b.Id);
            }
            catch (CloudArchiveException e) when (e.ExitCode is ExitCode.NoRecoveryPath or ExitCode.Corrupt)
            {
                unrestorable[b.Id] = e.Message;
                problems.Add($"backup {b.Id} cannot be restored: {e.Message}");
            }
        }
        PitrWindow? window = null;
        var restorable = backups.Where(b => !unrestorable.ContainsKey(b.Id)).ToList();
        if (restorable.Count > 0)
        {
            // The newest backup that replays to the end of the latest timeline; failing that, to the end of its own.
            foreach (var timeline in new[] { "latest", "current" })
            for (var i = restorable.Count - 1; i >= 0 && window is null; i--)
            {
                try
                {
                    var plan = planning.Plan(new RecoveryTarget(TargetKind.EndOfArchive, null, timeline), restorable[i].Id);
                    var end = await wal.ReadRecordAsync(WalFileName.Parse(plan.LastWalSegment), ct).ConfigureAwait(false);
                    window = new PitrWindow(restorable[0].StopTime, restorable[0].Id, end.ArchivedAt, plan.LastWalSegment, plan.TargetTimeline);
                }
                catch (CloudArchiveException e) when (e.ExitCode == ExitCode.NoRecoveryPath)
                {
                    // Consistent but not replayable to the end of its timeline path: the next older one may be.
                }
            }
        }
        else if (backups.Count == 0)
        {
            problems.Add("no base backup: nothing can be restored yet");
        }
        foreach (var t in inventory.Timelines)
            foreach (var g in t.Gaps)
                problems.Add($"WAL gap on timeline {t.Timeline}: {g.First} - {g.Last} ({g.Segments} missing)");
        if (Retention is { } policy && RetentionProblem(policy, backups.Where(b => !misfits.Contains(b.Id)).ToList(), now) is { } overdue)
            problems.Add(overdue);
        var keys = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var records = backups.Select(b => StoreLayout.BackupRecordKey(b.Id)).ToList();
        if (last is not null) records.Add(StoreLayout.WalRecordKey(WalFileName.Parse(last)));
        foreach (var key in records)
            if (await store.GetInfoAsync(key, ct).ConfigureAwait(false) is { } info)
            {
                var id = info.Metadata.Get(Crypto.ObjectEnvelope.KeyIdMetadata) ?? "none";
                keys[id] = keys.GetValueOrDefault(id) + 1;
            }
        DrillRecord? drill = null;
        try
        {
            drill = await new DrillCatalog(store).LatestAsync(ct, problems).ConfigureAwait(false);
            if (drill is { Passed: false })
                problems.Add($"the last restore drill ({drill.Id}, {drill.EndTime:u}) failed at {drill.FailedStage}: {drill.Failure}");
        }
        catch (Pipeline.CorruptObjectException e)
        {
            problems.Add(e.Message);
        }
        var second = Second is null ? null : await SecondStoreReport.ReadAsync(Second, ct).ConfigureAwait(false);
        if (second?.Problem is { } behind) problems.Add(behind);
        return new StatusReport(store.Description, backups, dumps, inventory, last, lastAt, window, problems)
        {
            SecondStore = second,
            Unrestorable = unrestorable,
            Misfits = misfits,
            Locks = store.Horizon,
            LastPerTimeline = lastPerTimeline,
            Streamed = streamed,
            LastPushedBy = lastBy,
            WalStoredBytes = planning.Sizes.Values.Sum(),
            Keys = keys,
            LastDrill = drill,
        };
    }
}
