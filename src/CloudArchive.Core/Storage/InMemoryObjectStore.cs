using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace CloudArchive.Core.Storage;

/// <summary>
/// An object store in memory, for unit tests of the services: the same contract as the real backends (it runs the
/// same contract suite), and on request the faults real stores have, so the rules about them are unit tests:
/// a store that ignores the write condition, one that loses the response to a successful write, one that fails
/// the next N requests with a transient fault, one that is slow; one that keeps versions as a versioned S3 bucket does
/// (taking a second put of a key beside the first) and holds locks. Never for users: nothing is durable.
/// </summary>
public sealed class InMemoryObjectStore : IObjectStore, IRetentionProbe
{
    private readonly ConcurrentDictionary<string, (byte[] Content, ObjectMetadata Metadata)> _objects = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, List<ObjectVersion>> _versions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lockedUntil = new(StringComparer.Ordinal);
    private long _nextVersion;
    private int _failures;
    private int _lostResponses;

    /// <inheritdoc />
    public string Description { get; init; } = "memory://test";

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => null;

    /// <summary>Like an S3-compatible server that ignores If-None-Match: a put replaces what is there.</summary>
    public bool IgnoresWriteCondition { get; set; }

    /// <summary>
    /// Like a versioned S3 bucket that ignores If-None-Match (Ceph RGW with Object Lock): a put of an existing key is taken as
    /// a new version beside the first, and the store then holds it to <see cref="ObjectVersions"/>' rule, as the S3 backend does:
    /// the put is refused afterwards, reads serve the first version.
    /// </summary>
    public bool KeepsVersions { get; init; }

    /// <summary>The lock every write carries, as --lock-days gives a cloud store; a locked object's delete is refused.</summary>
    public ObjectLock? Lock { get; init; }

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => KeepsVersions || Lock is not null ? this : null;

    /// <summary>How many versions <paramref name="key"/> holds (1 once written; more when a versioned store took later puts).</summary>
    public int VersionCount(string key) => _versions.TryGetValue(key, out var v) ? v.Count(x => !x.DeleteMarker) : _objects.ContainsKey(key) ? 1 : 0;

    /// <summary>Sets (or moves) <paramref name="key"/>'s lock date, as time passing would.</summary>
    public void SetLockedUntil(string key, DateTimeOffset until) => _lockedUntil[key] = until;

    /// <summary>Each request waits this long first.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>Like a store that answers "created" but kept less than it was sent (a proxy cutting the body): the last byte is lost.</summary>
    public bool TruncatesWrites { get; set; }

    /// <summary>Every request is refused as a permanent fault (wrong credentials, no such bucket): retrying cannot help.</summary>
    public bool RefusesAccess { get; set; }

    /// <summary>The next <paramref name="count"/> requests fail with a transient fault (a 503, a reset) and do nothing.</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _failures, count);

    /// <summary>The next <paramref name="count"/> successful writes happen, but their answer is lost (a transient fault).</summary>
    public void LoseNextResponses(int count) => Interlocked.Exchange(ref _lostResponses, count);

    /// <summary>Every stored key, in ordinal order.</summary>
    public IReadOnlyCollection<string> Keys => [.. _objects.Keys.Order(StringComparer.Ordinal)];

    /// <inheritdoc />
    public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        await BeforeRequestAsync($"writing {key}", ct).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        await content.CopyToAsync(buffer, ct).ConfigureAwait(false);
        var bytes = buffer.ToArray();
        var entry = (TruncatesWrites && bytes.Length > 0 ? bytes[..^1] : bytes, new ObjectMetadata(metadata));
        PutOutcome outcome;
        if (Lock is { } locking && !_lockedUntil.ContainsKey(key)) _lockedUntil[key] = locking.Until(DateTimeOffset.UtcNow);
        if (KeepsVersions)
        {
            // The put is taken whatever is there (a new version, newest first as S3 lists them); then the rule decides.
            var id = $"v{Interlocked.Increment(ref _nextVersion)}";
            var versions = _versions.GetOrAdd(key, _ => []);
            lock (versions) versions.Insert(0, new ObjectVersion(id));
            _objects.TryAdd(key, entry);
            List<ObjectVersion> seen;
            lock (versions) seen = [.. versions];
            outcome = ObjectVersions.Won(seen, id) ? new PutOutcome.Created() : new PutOutcome.AlreadyExists(Info(key, _objects[key]));
        }
        else if (IgnoresWriteCondition)
        {
            _objects[key] = entry;
            outcome = new PutOutcome.Created();
        }
        else
        {
            outcome = _objects.TryAdd(key, entry) ? new PutOutcome.Created() : new PutOutcome.AlreadyExists(Info(key, _objects[key]));
        }
        if (outcome is PutOutcome.Created && Interlocked.Decrement(ref _lostResponses) >= 0)
            throw new StoreUnavailableException($"writing {key}: {Description}: the connection was reset before the answer", transient: true);
        return outcome;
    }

    /// <inheritdoc />
    public async Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
    {
        await BeforeRequestAsync($"reading {key}", ct).ConfigureAwait(false);
        return _objects.TryGetValue(key, out var o) ? new StoredObject(Info(key, o), new MemoryStream(o.Content, writable: false)) : null;
    }

    /// <inheritdoc />
    public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct)
    {
        await BeforeRequestAsync($"reading {key}", ct).ConfigureAwait(false);
        return _objects.TryGetValue(key, out var o) ? Info(key, o) : null;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ListedObject> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
    {
        await BeforeRequestAsync($"listing {prefix}", ct).ConfigureAwait(false);
        foreach (var key in _objects.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList())
            if (_objects.TryGetValue(key, out var o))
                yield return new ListedObject(key, o.Content.Length);
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string key, CancellationToken ct)
    {
        await BeforeRequestAsync($"deleting {key}", ct).ConfigureAwait(false);
        if (_objects.ContainsKey(key) && _lockedUntil.TryGetValue(key, out var until) && until > DateTimeOffset.UtcNow)
            throw new ObjectLockedException($"deleting {key}: {Description} refused it (object lock until {until.UtcDateTime:u})", key, until);
        _versions.TryRemove(key, out _);
        _lockedUntil.TryRemove(key, out _);
        return _objects.TryRemove(key, out _);
    }

    /// <inheritdoc />
    public Task<RetentionReport> DescribeAsync(CancellationToken ct) => Task.FromResult(new RetentionReport(
        KeepsVersions ? "Enabled" : "off", KeepsVersions, Lock is not null, Lock is not null ? "locks held in memory" : "no locks", Lock));

    /// <summary>Nothing is ever left half-written in memory.</summary>
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<string>>([]);

    private async Task BeforeRequestAsync(string what, CancellationToken ct)
    {
        if (Latency > TimeSpan.Zero) await Task.Delay(Latency, ct).ConfigureAwait(false);
        if (RefusesAccess) throw new StoreUnavailableException($"{what}: {Description} answered 403 AccessDenied", transient: false);
        if (Interlocked.Decrement(ref _failures) >= 0)
            throw new StoreUnavailableException($"{what}: {Description} answered 503 SlowDown", transient: true);
    }

    private ObjectInfo Info(string key, (byte[] Content, ObjectMetadata Metadata) o) =>
        new(key, o.Content.Length, new ObjectMetadata(o.Metadata)) { LockedUntil = _lockedUntil.TryGetValue(key, out var until) ? until : null };
}
