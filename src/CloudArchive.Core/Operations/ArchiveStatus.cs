using CloudArchive.Core.Backup;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Operations;

public sealed record PitrWindow(DateTimeOffset Earliest, string EarliestBackup, DateTimeOffset Latest, string LatestSegment, uint LatestTimeline);

public sealed record StatusReport(
    string Store,
    IReadOnlyList<BackupRecord> Backups,
    IReadOnlyList<Dump.DumpRecord> Dumps,
    WalInventory Wal,
    string? LastArchived,
    DateTimeOffset? LastArchivedAt,
    PitrWindow? Window,
    IReadOnlyList<string> Problems);

/// <summary>
/// status: the archive at a glance, from the manifest alone (no data is downloaded): backups, WAL ranges
/// with gaps, the last archived segment and its age, and the window point-in-time recovery can reach.
/// </summary>
public sealed class ArchiveStatus(IObjectStore store)
{
    public async Task<StatusReport> ReadAsync(CancellationToken ct)
    {
        var catalog = new BackupCatalog(store);
        var wal = new WalArchive(store, 0);
        var backups = await catalog.ListBackupsAsync(ct).ConfigureAwait(false);
        var inventory = await wal.ListAsync(ct).ConfigureAwait(false);
        var dumps = (await new Dump.DumpCatalog(store).ListAsync(ct).ConfigureAwait(false)).OrderByDescending(d => d.EndTime).ToList();
        var problems = new List<string>();

        string? last = null;
        DateTimeOffset? lastAt = null;
        if (inventory.Timelines.LastOrDefault(t => t.Ranges.Count > 0) is { } newest)
        {
            last = newest.Ranges[^1].Last;
            lastAt = (await wal.ReadRecordAsync(WalFileName.Parse(last), ct).ConfigureAwait(false)).ArchivedAt;
        }

        // Earliest: the oldest backup whose WAL reaches consistency; latest: how far replay goes from the newest.
        PitrWindow? window = null;
        BackupRecord? earliest = null;
        foreach (var b in backups)
        {
            try
            {
                await catalog.PlanAsync(new RecoveryTarget(TargetKind.Immediate, null, "current"), b.Id, ct).ConfigureAwait(false);
                earliest = b;
                break;
            }
            catch (CloudArchiveException e) when (e.ExitCode == ExitCode.NoRecoveryPath)
            {
                problems.Add($"backup {b.Id} cannot be restored: {e.Message}");
            }
        }
        if (earliest is not null)
        {
            var plan = await catalog.PlanAsync(new RecoveryTarget(TargetKind.EndOfArchive, null), "latest", ct).ConfigureAwait(false);
            var end = await wal.ReadRecordAsync(WalFileName.Parse(plan.LastWalSegment), ct).ConfigureAwait(false);
            window = new PitrWindow(earliest.StopTime, earliest.Id, end.ArchivedAt, plan.LastWalSegment, plan.TargetTimeline);
        }
        else if (backups.Count == 0)
        {
            problems.Add("no base backup: nothing can be restored yet");
        }
        foreach (var t in inventory.Timelines)
            foreach (var g in t.Gaps)
                problems.Add($"WAL gap on timeline {t.Timeline}: {g.First} - {g.Last} ({g.Segments} missing)");
        return new StatusReport(store.Description, backups, dumps, inventory, last, lastAt, window, problems);
    }
}
