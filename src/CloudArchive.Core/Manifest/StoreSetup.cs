using System.Globalization;
using System.Text.RegularExpressions;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Manifest;

/// <summary>What store-upgrade did: the history it added (or found), the store's first cluster, and how many histories were there before.</summary>
public sealed record StoreUpgradeResult(ClusterHistory History, bool Added, string? FirstSystemId, int EarlierHistories);

/// <summary>
/// Making a store (store-init: the marker and its archive id) and giving it a new cluster's history after a major
/// upgrade (store-upgrade, <see cref="ClusterHistories"/>). Both write one object by conditional put and nothing else.
/// </summary>
public static class StoreSetup
{
    /// <summary>
    /// Marks <paramref name="store"/> as a CloudArchive store with a new archive id, or <paramref name="archiveId"/> to
    /// adopt a store whose marker was set aside. True when it made the marker, false when one was there.
    /// </summary>
    public static async Task<bool> InitAsync(IObjectStore store, string? archiveId, CancellationToken ct)
    {
        if (archiveId is not null && !StoreMarker.IsArchiveId(archiveId))
            throw new CloudArchiveException(ExitCode.Usage, $"--archive-id {archiveId}: an archive id is 32 lowercase hex digits (the \"archive\" of a store's marker)");
        if (archiveId is null && await HoldsUnmarkedArchiveAsync(store, ct).ConfigureAwait(false))
            throw new CloudArchiveException(ExitCode.Usage, $"{store.Description} already holds an archive but no marker: a new archive id would " +
                "orphan its encrypted objects. Adopt it with store-init --archive-id ID, the \"archive\" of its old marker");
        using var marker = new MemoryStream((archiveId is null ? StoreMarker.New() : new StoreMarker(archiveId, null)).Encode());
        return await store.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, marker, new ObjectMetadata(), ct).ConfigureAwait(false) is PutOutcome.Created;
    }

    /// <summary>
    /// copy: marks a store without a marker as a copy of an archive with <paramref name="archiveId"/> (as store-init --archive-id does),
    /// or, for an archive made before archive ids, with a marker without one, as the source's.
    /// </summary>
    public static async Task MarkAsCopyAsync(IObjectStore store, string? archiveId, CancellationToken ct)
    {
        using var marker = new MemoryStream(new StoreMarker(archiveId, null).Encode());
        await store.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, marker, new ObjectMetadata(), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// A second copy of an archive (copy's destination, the second store archiving writes to) must be the same archive as the
    /// first: encrypted objects are bound to their archive id, so <paramref name="to"/> carries <paramref name="from"/>'s (given
    /// to a store without a marker, as store-init --archive-id does); one marked for another archive is refused (exit 3).
    /// </summary>
    public static async Task MarkAsCopyOfAsync(IObjectStore from, IObjectStore to, CancellationToken ct)
    {
        var source = await ReadMarkerAsync(from, false, ct).ConfigureAwait(false);
        var target = await ReadMarkerAsync(to, true, ct).ConfigureAwait(false);
        if (target is null)
        {
            await MarkAsCopyAsync(to, source?.ArchiveId, ct).ConfigureAwait(false);
            target = await ReadMarkerAsync(to, false, ct).ConfigureAwait(false);
        }
        if (source?.ArchiveId is { } id && target?.ArchiveId != id)
            throw new CloudArchiveException(ExitCode.RefusedOverwrite, $"{to.Description} is another archive (archive id {target?.ArchiveId ?? "none"}), not a " +
                $"copy of {from.Description} (archive id {id}): copy into a new store, or one made with store-init --archive-id {id}");
    }

    /// <param name="notYetAStore">A local directory that is no store yet reads as one without a marker (a copy, before it is made one).</param>
    private static async Task<StoreMarker?> ReadMarkerAsync(IObjectStore store, bool notYetAStore, CancellationToken ct)
    {
        try
        {
            await using var marker = await store.OpenReadAsync(StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false);
            return marker is null ? null : StoreMarker.Parse(marker.Content, $"{StoreLayout.StoreMarkerKey} in {store.Description}");
        }
        catch (StoreUnavailableException e) when (notYetAStore && !e.Outage)
        {
            // Refused access is found again by the marker's write, which fails with the store's own message.
            return null;
        }
    }

    private static async Task<bool> HoldsUnmarkedArchiveAsync(IObjectStore store, CancellationToken ct)
    {
        try
        {
            return await store.GetInfoAsync(StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false) is null
                && await StoreLayout.HoldsArchiveAsync(store, ct).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e) when (!e.Outage)
        {
            return false; // a local directory that is not a store yet (no marker, no manifest), or not there yet
        }
    }

    /// <summary>
    /// store-upgrade: the cluster in <paramref name="pgdata"/> (pg_upgrade's new one) gets its own history in the store
    /// as a whole. Refused for a directory without pg_control or PG_VERSION, a store with nothing archived, and the
    /// store's own first cluster; a second run finds the history there.
    /// </summary>
    public static async Task<StoreUpgradeResult> UpgradeAsync(IObjectStore store, string pgdata, CancellationToken ct)
    {
        var control = ControlFile.TryRead(pgdata)
            ?? throw new CloudArchiveException(ExitCode.Usage, $"{pgdata} holds no readable global/pg_control: name the upgraded cluster's data directory with --pgdata");
        var versionFile = Path.Combine(pgdata, "PG_VERSION");
        var version = File.Exists(versionFile) ? File.ReadAllText(versionFile).Trim() : "";
        if (!Regex.IsMatch(version, "^[0-9]{1,2}$"))
            throw new CloudArchiveException(ExitCode.Usage, $"{pgdata} has no PG_VERSION of a PostgreSQL major: is it a data directory?");
        var histories = await ClusterHistories.ListAsync(store, ct).ConfigureAwait(false);
        if (histories.FirstOrDefault(h => h.SystemId == control.SystemIdentifier) is { } known)
            return new StoreUpgradeResult(known, false, null, histories.Count);
        var first = await ClusterHistories.FirstClusterOfRecordsAsync(ClusterHistories.First(store), ct).ConfigureAwait(false)
            ?? throw new CloudArchiveException(ExitCode.Usage, $"{store.Description} holds no archived WAL yet: archive this cluster into it directly, " +
                "store-upgrade is for the cluster that replaces the one it archives");
        if (first == control.SystemIdentifier.ToString(CultureInfo.InvariantCulture))
            throw new CloudArchiveException(ExitCode.Usage, $"database system {first} is the one {store.Description} was made for: there is nothing to " +
                "upgrade (store-upgrade is for the new cluster pg_upgrade makes)");
        var history = new ClusterHistory(control.SystemIdentifier, version, DateTimeOffset.UtcNow);
        var added = await ClusterHistories.AddAsync(store, history, ct).ConfigureAwait(false);
        return new StoreUpgradeResult(history, added, first, histories.Count);
    }
}
