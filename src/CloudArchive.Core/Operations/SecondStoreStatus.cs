using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Operations;

/// <summary>The two stores status compares (--store-2): their backends, the second's mode, the spool's backlog when known.</summary>
/// <param name="First">The first store's backend.</param>
/// <param name="Second">The second store's backend.</param>
/// <param name="Mode">How much archiving waits for the second.</param>
/// <param name="Backlog">The backlog of the spool this command was pointed at; null when none is known.</param>
public sealed record SecondStoreProbe(IObjectStore First, IObjectStore Second, SecondStoreMode Mode, StoreBacklog? Backlog);

/// <summary>What the second store lacks of the first.</summary>
/// <param name="Store">The second store.</param>
/// <param name="Mode">required or best-effort.</param>
/// <param name="LackingObjects">Objects of the archive in the first store and not in the second.</param>
/// <param name="LackingBytes">Their size in the first.</param>
/// <param name="LackingSegments">WAL files among them.</param>
/// <param name="LackingBackups">Backups with an object (or their record) among them.</param>
/// <param name="LackingDumps">Dumps with an object (or their record) among them.</param>
/// <param name="BacklogObjects">Keys in the spool's backlog; null when no backlog was looked at.</param>
/// <param name="BacklogOldest">When the oldest of them was missed.</param>
/// <param name="Failure">Why the second store could not be listed; null when it was.</param>
public sealed record SecondStoreReport(string Store, string Mode, long LackingObjects, long LackingBytes, int LackingSegments,
    IReadOnlyList<string> LackingBackups, IReadOnlyList<string> LackingDumps, int? BacklogObjects, DateTimeOffset? BacklogOldest, string? Failure)
{
    /// <summary>The second store holds every object of the archive the first holds.</summary>
    public bool Complete => Failure is null && LackingObjects == 0;

    /// <summary>Compares the two stores' listings (no object is downloaded) and reads the backlog.</summary>
    public static async Task<SecondStoreReport> ReadAsync(SecondStoreProbe probe, CancellationToken ct)
    {
        var mode = probe.Mode == SecondStoreMode.BestEffort ? "best-effort" : "required";
        var backlog = probe.Backlog?.Read();
        int? backlogCount = backlog?.Count;
        var oldest = backlog is { Count: > 0 } ? backlog[0].Since : (DateTimeOffset?)null;
        var first = await ArchiveCopier.ListAsync(probe.First, ct).ConfigureAwait(false);
        Dictionary<string, ListedObject> second;
        try
        {
            second = await ArchiveCopier.ListAsync(probe.Second, ct).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            return new SecondStoreReport(probe.Second.Description, mode, 0, 0, 0, [], [], backlogCount, oldest, e.Message.ReplaceLineEndings(" "));
        }
        // What the second store's own retention removed (expire keeps M there, N in the first) is not lacking: only what is newer than
        // its oldest backup, dump and WAL file (per history and timeline) counts. A second store emptied has no horizon: all of it lacks.
        var horizon = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in second.Keys)
            if (Unit(key) is { } unit && (!horizon.TryGetValue(unit.Group, out var seen) || string.CompareOrdinal(unit.Id, seen) < 0))
                horizon[unit.Group] = unit.Id;
        var lacking = first.Values.Where(o => !second.ContainsKey(o.Key)
            && !(Unit(o.Key) is { } unit && horizon.TryGetValue(unit.Group, out var kept) && string.CompareOrdinal(unit.Id, kept) <= 0)).ToList();
        var backups = new SortedSet<string>(StringComparer.Ordinal);
        var dumps = new SortedSet<string>(StringComparer.Ordinal);
        var segments = 0;
        foreach (var o in lacking)
        {
            var (_, key) = StoreLayout.SplitHistory(o.Key);
            var record = StoreLayout.RecordOf(key) ?? key;
            if (key.StartsWith(StoreLayout.WalPrefix, StringComparison.Ordinal)) segments++;
            if (StoreLayout.BackupIdFromRecordKey(record) is { } backup) backups.Add(backup);
            else if (StoreLayout.DumpIdFromRecordKey(record) is { } dump) dumps.Add(dump);
        }
        return new SecondStoreReport(probe.Second.Description, mode, lacking.Count, lacking.Sum(o => o.Size), segments, [.. backups], [.. dumps],
            backlogCount, oldest, null);
    }

    /// <summary>
    /// What an object belongs to, in the order expire removes it: a backup or a dump (by id, which sorts by time) or a WAL file (by
    /// name, per timeline), each within its cluster history; null for anything else (records of drills, histories).
    /// </summary>
    private static (string Group, string Id)? Unit(string fullKey)
    {
        var (history, key) = StoreLayout.SplitHistory(fullKey);
        var record = StoreLayout.RecordOf(key) ?? key;
        // A backup or dump id is its start second and a random suffix: two in one second sort by chance, so only the second counts.
        if (StoreLayout.BackupIdFromRecordKey(record) is { } backup) return (history + "backups", backup.Split('-')[0]);
        if (StoreLayout.DumpIdFromRecordKey(record) is { } dump) return (history + "dumps", dump.Split('-')[0]);
        if (StoreLayout.WalNameFromRecordKey(record) is { } wal) return (history + "wal/" + wal.Timeline.ToString(System.Globalization.CultureInfo.InvariantCulture), wal.Name);
        return null;
    }

    /// <summary>The problem line status reports for a second store that lacks something, or cannot be listed; null when it is complete.</summary>
    public string? Problem => Failure is not null
        ? $"second store {Store} cannot be listed: {Failure}"
        : LackingObjects == 0 ? null
        : $"second store {Store} ({Mode}) lacks {LackingObjects} objects of the first: {LackingSegments} WAL files, {LackingBackups.Count} backups, " +
            $"{LackingDumps.Count} dumps{(BacklogObjects > 0 ? $", {BacklogObjects} in the backlog" : "")}: it catches up when it answers (copy fills it in too)";
}
