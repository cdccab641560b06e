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
    public static async Task<List<ClusterHistory>> ListAsync(IObjectStore store, CancellationToken ct)
    {
        var result = new List<ClusterHistory>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestClusterPrefix, ct).ConfigureAwait(false))
        {
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
        return [.. result.OrderBy(h => h.CreatedAt)];
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
    public static IObjectStore Select(IObjectStore store, ulong? systemId) => new HistoryView(store, systemId, null);

    /// <summary>The store as its first history (the cluster it was made for), whatever store-upgrade added.</summary>
    public static IObjectStore First(IObjectStore store) => new HistoryView(store, null, "");

    /// <summary>The store as <paramref name="history"/>.</summary>
    public static IObjectStore Of(IObjectStore store, ClusterHistory history) => new HistoryView(store, history.SystemId, history.Prefix);

    private sealed class HistoryView(IObjectStore root, ulong? systemId, string? fixedPrefix) : IObjectStore
    {
        private Task<string>? _prefix = fixedPrefix is null ? null : Task.FromResult(fixedPrefix);

        public string Description => root.Description;

        public ILargeWriteConditionProbe? LargeWriteProbe => root.LargeWriteProbe;

        private Task<string> PrefixAsync(CancellationToken ct) => _prefix ??= DecideAsync(ct);

        private async Task<string> DecideAsync(CancellationToken ct)
        {
            try
            {
                var histories = await ClusterHistories.ListAsync(root, ct).ConfigureAwait(false);
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
            return await root.PutIfAbsentAsync(full, content, metadata, ct).ConfigureAwait(false) switch
            {
                PutOutcome.AlreadyExists e => new PutOutcome.AlreadyExists(e.Existing with { Key = key }),
                var other => other,
            };
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
