using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace CloudArchive.Core.Storage;

/// <summary>
/// Two copies of one archive read as one, for the commands that read (wal-fetch, plan, restore, drill, dump-restore): an
/// object is read from the first store, and from the second when the first lacks it, cannot be reached, or was set aside
/// as corrupt there (<see cref="SetAside"/>), each time with a warning. "Absent" is said only when both stores answered
/// and neither has the object: a store that is down never makes an object absent (its failure is raised when the other
/// lacks it too). Listings are the union of both. Writes (a restore's lease) go to the first store only.
/// </summary>
public sealed class FallbackObjectStore(IObjectStore first, IObjectStore second) : IObjectStore
{
    private readonly ConcurrentDictionary<string, bool> _setAside = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public string Description => first.Description;

    /// <summary>The second store, for messages.</summary>
    public string SecondDescription => second.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => first.LargeWriteProbe;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => first.RetentionProbe;

    /// <inheritdoc />
    public FallbackObjectStore? Fallback => this;

    /// <inheritdoc />
    public MirroredObjectStore? Mirror => first.Mirror;

    /// <summary>From now on <paramref name="key"/> is read from the second store only (its copy in the first failed a check).</summary>
    public void SetAside(string key) => _setAside.TryAdd(key, true);

    /// <summary>Whether <paramref name="key"/> is read from the second store only.</summary>
    public bool IsSetAside(string key) => _setAside.ContainsKey(key);

    /// <summary>
    /// Runs a checked read of <paramref name="key"/> (a fetch, an extraction, a record's parse). When it finds the object corrupt
    /// and <paramref name="store"/> reads two copies of the archive, the key is set aside and the read runs once more, from
    /// the second store, checked the same way; a failure there is the answer. A single store: the read, as it is.
    /// </summary>
    /// <param name="beforeRetry">Forgets what the failed read left (a cached copy of the object).</param>
    public static async Task<T> ReadCheckedAsync<T>(IObjectStore store, string key, Func<Task<T>> read, Action? beforeRetry = null)
    {
        var both = store.Fallback;
        // Decided before the read: a read that began on the first store's copy gets its retry, whoever set the key aside meanwhile.
        var fromSecond = both is null || both.IsSetAside(key);
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (Pipeline.CorruptObjectException e) when (!fromSecond)
        {
            both!.SetAside(key);
            Log.Warn($"{e.Message.ReplaceLineEndings(" ")}: reading {key} from {both.SecondDescription}");
            beforeRetry?.Invoke();
            return await read().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct) => ReadAsync(key, (s, c) => s.OpenReadAsync(key, c), ct);

    /// <inheritdoc />
    public Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) => ReadAsync(key, (s, c) => s.GetInfoAsync(key, c), ct);

    private async Task<T?> ReadAsync<T>(string key, Func<IObjectStore, CancellationToken, Task<T?>> read, CancellationToken ct) where T : class
    {
        if (_setAside.ContainsKey(key)) return await read(second, ct).ConfigureAwait(false);
        T? found;
        try
        {
            found = await read(first, ct).ConfigureAwait(false);
        }
        catch (StoreUnavailableException down)
        {
            T? other;
            try
            {
                other = await read(second, ct).ConfigureAwait(false);
            }
            catch (StoreUnavailableException)
            {
                other = null;
            }
            // Unreachable is never "absent": without the second's copy, the first's failure stands.
            if (other is null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(down);
            Log.Warn($"{first.Description} cannot be read ({down.Message.ReplaceLineEndings(" ")}): {key} read from {second.Description}");
            return other;
        }
        if (found is not null) return found;
        var fallback = await read(second, ct).ConfigureAwait(false);
        if (fallback is not null) Log.Warn($"{key} is not in {first.Description}: read from {second.Description}");
        return fallback;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ListedObject> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
    {
        // Both listings are ordinal: merged, each key once (the first store's entry).
        await using var a = await StartAsync(first, prefix, ct).ConfigureAwait(false);
        await using var b = await StartAsync(second, prefix, ct).ConfigureAwait(false);
        if (a.Failure is not null && b.Failure is not null) throw a.Failure;
        if (a.Failure is not null) Log.Warn($"{first.Description} cannot be listed ({a.Failure.Message.ReplaceLineEndings(" ")}): listing {second.Description} alone");
        if (b.Failure is not null) Log.Warn($"{second.Description} cannot be listed ({b.Failure.Message.ReplaceLineEndings(" ")}): listing {first.Description} alone");
        while (a.Has || b.Has)
        {
            var order = !a.Has ? 1 : !b.Has ? -1 : string.CompareOrdinal(a.Current.Key, b.Current.Key);
            if (order <= 0)
            {
                yield return a.Current;
                if (order == 0) await b.NextAsync().ConfigureAwait(false);
                await a.NextAsync().ConfigureAwait(false);
            }
            else
            {
                yield return b.Current;
                await b.NextAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task<Listing> StartAsync(IObjectStore store, string prefix, CancellationToken ct)
    {
        var listing = new Listing(store.ListAsync(prefix, ct).GetAsyncEnumerator(ct));
        try
        {
            await listing.NextAsync().ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            listing.Failure = e;
        }
        return listing;
    }

    /// <inheritdoc />
    public Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct) =>
        first.PutIfAbsentAsync(key, content, metadata, ct);

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string key, CancellationToken ct) => first.DeleteAsync(key, ct);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        first.RemoveAbandonedWritesAsync(before, dryRun, ct);

    private sealed class Listing(IAsyncEnumerator<ListedObject> items) : IAsyncDisposable
    {
        public bool Has { get; private set; }
        public ListedObject Current => items.Current;
        public StoreUnavailableException? Failure { get; set; }

        public async Task NextAsync() => Has = Failure is null && await items.MoveNextAsync().ConfigureAwait(false);

        public ValueTask DisposeAsync() => items.DisposeAsync();
    }
}
