using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Manifest;

/// <summary>One history of a store after store-upgrade: the cluster pg_upgrade (or a dump and reload) made.</summary>
/// <param name="SystemId">The new cluster's database system identifier.</param>
/// <param name="PgVersion">Its major version, from PG_VERSION.</param>
/// <param name="CreatedAt">When store-upgrade started it.</param>
public sealed record ClusterHistory(ulong SystemId, string PgVersion, DateTimeOffset CreatedAt)
{
    /// <summary>Where this history's WAL, backups, dumps and records live: the same layout as the store's first history, under a prefix.</summary>
    public string Prefix => $"{StoreLayout.ClusterPrefix}{SystemId}/";
}

/// <summary>
/// A store holds one cluster's history at its root (the cluster it was made for) and, after each
/// <c>store-upgrade</c>, the history of an upgraded cluster under <c>clusters/SYSTEMID/</c>, declared by a record
/// in <c>manifest/clusters/</c> (written once, never changed). Which history a command works on: the one of the
/// cluster it serves when its system identifier is known (archive_command and restore_command run in the data
/// directory; backup-push asks the server), else the one named by the system-id setting, else the newest.
/// </summary>
public static class ClusterHistories
{
    /// <summary>Larger than any record store-upgrade writes.</summary>
    private const int MaxRecord = 4096;

    /// <summary>Every history declared in the store, oldest first. A record that is not one store-upgrade writes is corrupt.</summary>
    public static async Task<List<ClusterHistory>> ListAsync(IObjectStore store, CancellationToken ct) =>
        (await ScanAsync(store, ct).ConfigureAwait(false)).Histories;

    /// <summary>
    /// One listing of manifest/clusters/: the histories store-upgrade declared, and the store's first cluster as its first
    /// writer stamped it (null: not stamped yet; the smallest id should two clusters ever have raced to be first).
    /// </summary>
    private static async Task<(List<ClusterHistory> Histories, ulong? First)> ScanAsync(IObjectStore store, CancellationToken ct)
    {
        var result = new List<ClusterHistory>();
        ulong? first = null;
        await foreach (var item in store.ListAsync(StoreLayout.ManifestClusterPrefix, ct).ConfigureAwait(false))
        {
            if (StoreLayout.FirstClusterFromStampKey(item.Key) is { } stamped)
            {
                first = first is { } f ? Math.Min(f, stamped) : stamped;
                continue;
            }
            if (StoreLayout.ClusterIdFromRecordKey(item.Key) is not { } id) continue;
            await using var obj = await store.OpenReadAsync(item.Key, ct).ConfigureAwait(false);
            if (obj is null) continue;
            var what = $"{item.Key} in {store.Description}";
            var buffer = new byte[MaxRecord + 1];
            var length = await obj.Content.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            if (length > MaxRecord) throw new Pipeline.CorruptObjectException($"{what} is larger than a cluster history record");
            try
            {
                using var doc = JsonDocument.Parse(buffer.AsMemory(0, length));
                var root = doc.RootElement;
                var history = new ClusterHistory(
                    ulong.Parse(root.GetProperty("systemId").GetString()!, NumberStyles.None, CultureInfo.InvariantCulture),
                    root.GetProperty("pgVersion").GetString()!, root.GetProperty("createdAt").GetDateTimeOffset());
                if (history.SystemId != id || !System.Text.RegularExpressions.Regex.IsMatch(history.PgVersion, "^[0-9]{1,2}$"))
                    throw new FormatException("its fields do not match its name");
                result.Add(history);
            }
            catch (Exception e) when (e is JsonException or FormatException or OverflowException or KeyNotFoundException or InvalidOperationException
                or ArgumentNullException)
            {
                throw new Pipeline.CorruptObjectException($"{what} is not a cluster history record ({e.Message})", e);
            }
        }
        // store-upgrade never gives the store's first cluster a history: such a record was planted, and would send that
        // cluster's restore_command to an empty prefix, where every segment is "not archived".
        if (first is { } own && result.Any(h => h.SystemId == own))
            throw new Pipeline.CorruptObjectException($"{StoreLayout.ClusterRecordKey(own)} in {store.Description} gives database system {own} a history " +
                "of its own, but it is the store's first cluster, which store-upgrade never does: the record was planted");
        return ([.. result.OrderBy(h => h.CreatedAt)], first);
    }

    /// <summary>
    /// The first history's cluster as its records say: the system identifier of its first segment's WAL record (null when
    /// nothing is archived). For a store archived into before first-cluster stamps existed.
    /// </summary>
    internal static async Task<string?> FirstClusterOfRecordsAsync(IObjectStore first, CancellationToken ct)
    {
        await foreach (var item in first.ListAsync(StoreLayout.ManifestWalPrefix, ct).ConfigureAwait(false))
        {
            if (StoreLayout.WalNameFromRecordKey(item.Key) is not { Kind: Wal.WalFileKind.Segment }) continue;
            var record = await ManifestRecords.ReadAsync(first, item.Key, ManifestJson.Default.WalFileRecord, "WAL file", item.Key, ct).ConfigureAwait(false);
            if (record.SystemIdentifier is not null) return record.SystemIdentifier;
        }
        return null;
    }

    /// <summary>The record of a new history (conditional put: a second store-upgrade of the same cluster finds it there).</summary>
    public static async Task<bool> AddAsync(IObjectStore store, ClusterHistory history, CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["systemId"] = history.SystemId.ToString(CultureInfo.InvariantCulture),
            ["pgVersion"] = history.PgVersion,
            ["createdAt"] = history.CreatedAt.ToString("O", CultureInfo.InvariantCulture),
        }, ManifestJson.Default.DictionaryStringString);
        using var content = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json + "\n"));
        return await store.PutIfAbsentAsync(StoreLayout.ClusterRecordKey(history.SystemId), content, new ObjectMetadata(), ct).ConfigureAwait(false)
            is PutOutcome.Created;
    }

    /// <summary>
    /// The store as the history of <paramref name="systemId"/> (its own history when store-upgrade declared one, else the
    /// root's), or, with none given, as the newest history. Decided at the first request, with one listing.
    /// </summary>
    /// <param name="recheck">How long a cluster found without a history of its own trusts that (default <see cref="Recheck"/>).</param>
    public static IObjectStore Select(IObjectStore store, ulong? systemId, TimeSpan? recheck = null) => new HistoryView(store, systemId, null, recheck ?? Recheck);

    /// <summary>The store as its first history (the cluster it was made for), whatever store-upgrade added.</summary>
    public static IObjectStore First(IObjectStore store) => new HistoryView(store, null, "", Recheck);

    /// <summary>The store as <paramref name="history"/>.</summary>
    public static IObjectStore Of(IObjectStore store, ClusterHistory history) => new HistoryView(store, history.SystemId, history.Prefix, Recheck);

    /// <summary>How long a store view of a cluster without a history of its own trusts that (then lists the histories again).</summary>
    public static readonly TimeSpan Recheck = TimeSpan.FromSeconds(10);

    private sealed class HistoryView(IObjectStore root, ulong? systemId, string? fixedPrefix, TimeSpan recheck) : IObjectStore
    {
        private Task<string>? _prefix = fixedPrefix is null ? null : Task.FromResult(fixedPrefix);

        public string Description => root.Description;

        public ILargeWriteConditionProbe? LargeWriteProbe => root.LargeWriteProbe;

        /// <inheritdoc />
        public IRetentionProbe? RetentionProbe => root.RetentionProbe;

        public MirroredObjectStore? Mirror => root.Mirror;

        private long _decidedAt;

        /// <summary>
        /// The history's prefix, decided once; except that a cluster found without a history of its own is looked up again
        /// after the recheck interval: a long-lived agent of an upgraded cluster must follow a store-upgrade run meanwhile.
        /// </summary>
        private Task<string> PrefixAsync(CancellationToken ct)
        {
            var decided = _prefix;
            if (decided is { IsCompletedSuccessfully: true, Result.Length: 0 } && systemId is not null && fixedPrefix is null
                && Environment.TickCount64 - _decidedAt >= (long)recheck.TotalMilliseconds)
                decided = null;
            if (decided is not null) return decided;
            _decidedAt = Environment.TickCount64;
            return _prefix = DecideAsync(ct);
        }

        /// <summary>The store's first cluster, as stamped (null: not yet, or not looked at).</summary>
        private ulong? _first;

        private async Task<string> DecideAsync(CancellationToken ct)
        {
            try
            {
                var (histories, first) = await ScanAsync(root, ct).ConfigureAwait(false);
                _first = first;
                var chosen = systemId is { } id ? histories.FirstOrDefault(h => h.SystemId == id) : histories.LastOrDefault();
                return chosen?.Prefix ?? "";
            }
            catch
            {
                _prefix = null; // a store that was down is asked again by the next request (the retry layer's)
                throw;
            }
        }

        /// <summary>The store-wide objects stay where they are: the marker, and the history records themselves.</summary>
        private async Task<string> KeyAsync(string key, CancellationToken ct) =>
            key == StoreLayout.StoreMarkerKey || key.StartsWith(StoreLayout.ManifestClusterPrefix, StringComparison.Ordinal)
                ? key : await PrefixAsync(ct).ConfigureAwait(false) + key;

        public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
        {
            var full = await KeyAsync(key, ct).ConfigureAwait(false);
            if (full == key && systemId is { } cluster && fixedPrefix is null && IsHistoryData(key))
                await RequireFirstClusterAsync(cluster, ct).ConfigureAwait(false);
            return await root.PutIfAbsentAsync(full, content, metadata, ct).ConfigureAwait(false) switch
            {
                PutOutcome.AlreadyExists e => new PutOutcome.AlreadyExists(e.Existing with { Key = key }),
                var other => other,
            };
        }

        /// <summary>WAL, backups and dumps and their records: what a history holds (not the marker, probes or leases).</summary>
        private static bool IsHistoryData(string key) =>
            key.StartsWith(StoreLayout.WalPrefix, StringComparison.Ordinal) || key.StartsWith(StoreLayout.BackupPrefix, StringComparison.Ordinal)
            || key.StartsWith(StoreLayout.DumpPrefix, StringComparison.Ordinal)
            || (key.StartsWith(StoreLayout.ManifestPrefix, StringComparison.Ordinal) && !key.StartsWith(StoreLayout.ManifestClusterPrefix, StringComparison.Ordinal));

        /// <summary>
        /// A cluster without a history of its own writes into the store's first history only when it is the store's first
        /// cluster: another one (pg_upgrade's new cluster, whose WAL names may not collide with the old one's) would mix two
        /// systems in one history. The first writer stamps the store (its id from the archived records when there are any).
        /// </summary>
        private async Task RequireFirstClusterAsync(ulong cluster, CancellationToken ct)
        {
            if (_first is null)
            {
                var recorded = await FirstClusterOfRecordsAsync(new HistoryView(root, null, "", recheck), ct).ConfigureAwait(false);
                var first = recorded is not null && ulong.TryParse(recorded, System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out var r)
                    ? r : cluster;
                using var empty = new MemoryStream();
                await root.PutIfAbsentAsync(StoreLayout.FirstClusterStampKey(first), empty, new ObjectMetadata(), ct).ConfigureAwait(false);
                _first = (await ScanAsync(root, ct).ConfigureAwait(false)).First ?? first;
            }
            if (_first != cluster)
                throw new CloudArchiveException(ExitCode.RefusedOverwrite, $"this is database system {cluster}, but {root.Description} archives database " +
                    $"system {_first}: another cluster archives to this store, or this one was made by pg_upgrade or initdb; after an upgrade run " +
                    "cloudarchive store-upgrade --pgdata DATADIR once, then take a backup (docs/versions.md, Major upgrades)");
        }

        public async Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
        {
            var obj = await root.OpenReadAsync(await KeyAsync(key, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
            return obj is null ? null : new StoredObject(obj.Info with { Key = key }, obj.Content) { Authenticated = obj.Authenticated };
        }

        public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) =>
            await root.GetInfoAsync(await KeyAsync(key, ct).ConfigureAwait(false), ct).ConfigureAwait(false) is { } info ? info with { Key = key } : null;

        public async IAsyncEnumerable<ListedObject> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
        {
            var own = await PrefixAsync(ct).ConfigureAwait(false);
            await foreach (var item in root.ListAsync(own + prefix, ct).ConfigureAwait(false))
            {
                // The root history's listings never show the upgraded clusters' objects (nor their records).
                if (own.Length == 0 && (item.Key.StartsWith(StoreLayout.ClusterPrefix, StringComparison.Ordinal)
                    || item.Key.StartsWith(StoreLayout.ManifestClusterPrefix, StringComparison.Ordinal)))
                    continue;
                yield return item with { Key = item.Key[own.Length..] };
            }
        }

        public async Task<bool> DeleteAsync(string key, CancellationToken ct) =>
            await root.DeleteAsync(await KeyAsync(key, ct).ConfigureAwait(false), ct).ConfigureAwait(false);

        public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
            root.RemoveAbandonedWritesAsync(before, dryRun, ct);
    }
}
