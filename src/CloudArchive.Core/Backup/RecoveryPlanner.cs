using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Backup;

/// <summary>One timeline's stretch of the WAL a recovery replays.</summary>
public sealed record PlannedWal(uint Timeline, string FirstSegment, string LastSegment, long Segments, Lsn? EndsAt);

/// <summary>What a restore to a target needs: the backup, the timelines to follow and the WAL to replay.</summary>
/// <param name="Backup">The base backup to restore.</param>
/// <param name="Target">Where recovery stops.</param>
/// <param name="TargetTimeline">The timeline recovery ends on.</param>
/// <param name="TimelinePath">The timelines from the backup's to the target's, in order.</param>
/// <param name="Wal">The WAL to replay, one stretch per timeline.</param>
/// <param name="FirstWalSegment">The first segment replayed (the backup's start).</param>
/// <param name="LastWalSegment">The last segment replayed.</param>
/// <param name="BackupBytes">Stored bytes of the backup (the download).</param>
/// <param name="WalBytes">Stored bytes of the WAL to replay (the download estimate).</param>
/// <param name="Notes">What the planner chose and why, for the operator.</param>
public sealed record RecoveryPlan(BackupRecord Backup, RecoveryTarget Target, uint TargetTimeline, IReadOnlyList<uint> TimelinePath,
    IReadOnlyList<PlannedWal> Wal, string FirstWalSegment, string LastWalSegment, long BackupBytes, long WalBytes, IReadOnlyList<string> Notes)
{
    /// <summary>The backup and those it builds on (a full backup alone is a chain of one).</summary>
    public required BackupChain Chain { get; init; }

    /// <summary>
    /// Where replay stops at a hole that later segments of the final timeline follow (null: none): the end of this plan is not the
    /// end of the archive. A restore to the end of the archive is refused with it; status shows the window up to it.
    /// </summary>
    public CloudArchiveException? Gap { get; init; }
}

/// <summary>
/// "What do I need to restore to 10:42 yesterday?" as pure code: picks the backup, follows the timeline
/// history to the target timeline, and checks that the archive holds every segment from the backup's start
/// onwards without a gap, using only the manifest.
/// </summary>
public static class RecoveryPlanner
{
    /// <param name="segments">Archived segment names per timeline.</param>
    /// <param name="histories">Parsed .history files by timeline.</param>
    /// <param name="storedSizes">Stored bytes of WAL objects by file name (for the download estimate).</param>
    public static RecoveryPlan Plan(IReadOnlyList<BackupRecord> backups, RecoveryTarget target, string? backupId,
        IReadOnlyDictionary<uint, SortedSet<ulong>> segments, IReadOnlyDictionary<uint, List<TimelineSwitch>> histories,
        IReadOnlyDictionary<string, long> storedSizes)
    {
        if (backups.Count == 0) throw new CloudArchiveException(ExitCode.NoRecoveryPath, "the store holds no base backup");
        var notes = new List<string>();
        var ordered = backups.OrderBy(b => b.StopTime).ToList();
        BackupRecord backup;
        BackupChain? chain;
        if (backupId is not null and not "latest")
        {
            backup = ordered.FirstOrDefault(b => b.Id == backupId)
                ?? throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"no backup {backupId} in the store (see backup-list)");
            chain = BackupChain.Resolve(backup, ordered);
        }
        else
        {
            // A record whose times do not fit (from the future) is never chosen for the operator: it is named with --backup or not at all.
            var fitting = ordered.Where(b => Manifest.ManifestRecords.TimeProblem(b.StartTime, b.StopTime, DateTimeOffset.UtcNow) is null).ToList();
            foreach (var b in ordered.Except(fitting))
                notes.Add($"passed over backup {b.Id}: its record does not fit ({Manifest.ManifestRecords.TimeProblem(b.StartTime, b.StopTime, DateTimeOffset.UtcNow)})");
            var candidates = target.Kind switch
            {
                TargetKind.Time => fitting.Where(b => b.StopTime <= target.Time!.Value).ToList(),
                TargetKind.Lsn => fitting.Where(b => Lsn.Parse(b.StopLsn) <= target.Lsn!.Value).ToList(),
                _ => fitting,
            };
            if (candidates.Count == 0)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath,
                    $"the target ({target}) lies before the end of every backup (earliest ends {ordered[0].StopTime:u} at {ordered[0].StopLsn}); no backup " +
                        $"can reach it");
            // An incremental whose chain is broken is passed over for an older backup that restores, and the operator told.
            backup = candidates[^1];
            chain = null;
            CloudArchiveException? broken = null;
            foreach (var candidate in candidates.AsEnumerable().Reverse())
            {
                try
                {
                    chain = BackupChain.Resolve(candidate, ordered);
                    backup = candidate;
                    break;
                }
                catch (CloudArchiveException e) when (e.ExitCode == ExitCode.NoRecoveryPath)
                {
                    broken ??= e;
                    notes.Add($"passed over backup {candidate.Id}: {e.Message}");
                }
            }
            if (chain is null) throw broken!;
            if (target.Kind is TargetKind.Xid or TargetKind.Name)
                notes.Add($"a {target.Kind.ToString().ToLowerInvariant()} target cannot be placed in time from the manifest: using the latest backup; pass " +
                    $"--backup ID to start from an older one");
        }
        var segSize = backup.WalSegmentSize;
        if (target.Kind == TargetKind.Time && backup.StopTime > target.Time!.Value)
            throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"backup {backup.Id} ends at {backup.StopTime:u}, after the target {target.Time:u}");
        if (target.Kind == TargetKind.Lsn && Lsn.Parse(backup.StopLsn) > target.Lsn!.Value)
            throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"backup {backup.Id} ends at {backup.StopLsn}, after the target LSN {target.Value}");

        // Target timeline and the path to it from the backup's timeline.
        uint targetTli = target.Timeline switch
        {
            "current" => backup.Timeline,
            "latest" => LatestDescendant(backup, histories),
            var n => uint.TryParse(n, out var t) ? t : throw new CloudArchiveException(ExitCode.Usage, $"--target-timeline must be latest, current or a " +
                $"number, not '{n}'"),
        };
        var path = new List<uint>();
        var ends = new Dictionary<uint, Lsn>();
        if (targetTli == backup.Timeline) path.Add(targetTli);
        else
        {
            if (!histories.TryGetValue(targetTli, out var history))
                throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"timeline {targetTli} has no history file in the archive");
            var startLsn = Lsn.Parse(backup.StartLsn);
            var onPath = history.SkipWhile(h => h.Timeline != backup.Timeline).ToList();
            if (onPath.Count == 0 || onPath[0].SwitchLsn < startLsn)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath,
                    $"timeline {targetTli} did not branch from backup {backup.Id}'s timeline {backup.Timeline} after the backup started; choose another " +
                        $"backup or --target-timeline");
            foreach (var h in onPath) { path.Add(h.Timeline); ends[h.Timeline] = h.SwitchLsn; }
            path.Add(targetTli);
        }

        // Several timelines branching from one on the path (a copy promoted beside production, two failovers from one parent):
        // "latest" follows the highest, as PostgreSQL does; say which, and what else there was.
        if (target.Timeline == "latest")
            foreach (var parent in path)
            {
                var children = histories.Where(h => h.Value.Count > 0 && h.Value[^1].Timeline == parent).Select(h => h.Key).Order().ToList();
                if (children.Count > 1)
                    notes.Add($"timelines {string.Join(", ", children)} all branch from timeline {parent}; following " +
                        $"{(path.SkipWhile(t => t != parent).Skip(1).FirstOrDefault() is var followed && followed != 0 ? followed.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none of them")} " +
                        $"(latest: the highest that branched after the backup started); another one needs --target-timeline N");
            }

        // Walk the segments: every one from the backup start to each switch point, then as far as the
        // final timeline goes without a gap; the backup's own stop segment must be reached.
        var planned = new List<PlannedWal>();
        CloudArchiveException? gap = null;
        ulong next = Lsn.Parse(backup.StartLsn).Value / (ulong)segSize;
        ulong stopSeg = (Lsn.Parse(backup.StopLsn).Value - 1) / (ulong)segSize;
        long walBytes = 0;
        // Targets that stop at a known segment need nothing past it, whatever timelines follow.
        var limit = target.Kind switch
        {
            TargetKind.Immediate => stopSeg,
            TargetKind.Lsn => target.Lsn!.Value.Value / (ulong)segSize,
            _ => ulong.MaxValue,
        };
        foreach (var tli in path)
        {
            var have = segments.TryGetValue(tli, out var s) ? s : [];
            var isLast = tli == path[^1] || (ends.TryGetValue(tli, out var switchAt) && limit < switchAt.Value / (ulong)segSize);
            ulong last;
            if (!isLast)
            {
                // The segment holding the switch point is copied to the next timeline; read it from there.
                last = (ends[tli].Value - 1) / (ulong)segSize;
                for (var seg = next; seg <= last; seg++)
                    if (!have.Contains(seg) && !(seg == last && NextHas(segments, path, tli, seg)))
                        throw Gap(tli, seg, segSize, "before the switch to the next timeline");
            }
            else
            {
                last = next;
                if (!have.Contains(next)) throw Gap(tli, next, segSize, "at the start of the replay on this timeline");
                while (last < limit && have.Contains(last + 1)) last++;
                var mustReach = Math.Max(stopSeg, limit == ulong.MaxValue ? stopSeg : limit);
                if (last < mustReach)
                    throw Gap(tli, last + 1, segSize, target.Kind is TargetKind.Lsn ? "before the target LSN" : "before the end of the backup (the backup " +
                        "cannot become consistent)");
                // A hole is not the end: segments after it mean the archive goes on, and wal-fetch stops recovery there (exit 200).
                if (last < limit && have.Count > 0 && have.Max > last)
                {
                    var after = WalFileName.ForSegment(tli, have.GetViewBetween(last + 1, have.Max).Min, segSize).Name;
                    gap = Gap(tli, last + 1, segSize, $"although the archive goes on from {after}: recovery would stop there with an error, not at " +
                        $"the end of the archive; choose a target before the gap (--target-time, --target-lsn)");
                    notes.Add($"the archive has a gap: segment {WalFileName.ForSegment(tli, last + 1, segSize).Name} of timeline {tli} is missing, and it " +
                        $"goes on from {after}; if the target lies after the gap, recovery stops there with an error");
                }
            }
            var first = WalFileName.ForSegment(tli, next, segSize).Name;
            var lastName = WalFileName.ForSegment(tli, last, segSize).Name;
            for (var seg = next; seg <= last; seg++)
                walBytes += storedSizes.TryGetValue(WalFileName.ForSegment(tli, seg, segSize).Name, out var b) ? b : 0;
            planned.Add(new PlannedWal(tli, first, lastName, (long)(last - next + 1), ends.TryGetValue(tli, out var e) ? e : null));
            if (isLast) break;
            next = ends[tli].Value / (ulong)segSize;
        }
        if (target.Kind is TargetKind.Time or TargetKind.EndOfArchive or TargetKind.Xid or TargetKind.Name)
            notes.Add($"replay continues until the target is reached or the archive ends at {planned[^1].LastSegment}");
        return new RecoveryPlan(backup, target, targetTli, path, planned, planned[0].FirstSegment, planned[^1].LastSegment,
            chain.StoredSize, walBytes, notes) { Chain = chain, Gap = gap };
    }

    private static bool NextHas(IReadOnlyDictionary<uint, SortedSet<ulong>> segments, List<uint> path, uint tli, ulong seg)
    {
        var i = path.IndexOf(tli);
        return i + 1 < path.Count && segments.TryGetValue(path[i + 1], out var s) && s.Contains(seg);
    }

    private static uint LatestDescendant(BackupRecord backup, IReadOnlyDictionary<uint, List<TimelineSwitch>> histories)
    {
        var start = Lsn.Parse(backup.StartLsn);
        var best = backup.Timeline;
        foreach (var (tli, history) in histories)
        {
            if (tli <= best) continue;
            var fromOurs = history.FirstOrDefault(h => h.Timeline == backup.Timeline);
            if (fromOurs is not null && fromOurs.SwitchLsn >= start) best = tli;
        }
        return best;
    }

    private static CloudArchiveException Gap(uint tli, ulong seg, long segSize, string where) =>
        new(ExitCode.NoRecoveryPath, $"the archive has a gap: segment {WalFileName.ForSegment(tli, seg, segSize).Name} of timeline {tli} is missing {where}");
}
