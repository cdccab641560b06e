namespace CloudArchive.Core.Storage;

/// <summary>What a store says about versions and locks (store-check), from the bucket's or container's own settings.</summary>
/// <param name="Versioning">Versioning as the store reports it: "Enabled", "Suspended", "off", or how it could be told.</param>
/// <param name="Versioned">The store keeps versions of a key, so a second PUT may be taken beside the first (the oldest-version rule guards it).</param>
/// <param name="LocksSupported">The bucket has Object Lock enabled / the container version-level immutability; null when it cannot be told.</param>
/// <param name="LockDetail">How that was found, one line.</param>
/// <param name="InForce">The lock every write carries (--lock-days); null: none.</param>
public sealed record RetentionReport(string Versioning, bool Versioned, bool? LocksSupported, string LockDetail, ObjectLock? InForce);

/// <summary>Implemented by backends that can keep versions or hold locks (S3, Azure): what store-check reports of them.</summary>
public interface IRetentionProbe
{
    /// <summary>The store's versioning, its lock support and the lock in force.</summary>
    Task<RetentionReport> DescribeAsync(CancellationToken ct);
}

/// <summary>
/// The lock horizon of what a command read (status, verify): how many objects carried a retention lock, and the earliest and
/// latest retain-until date among them. Thread-safe: verify reads in parallel.
/// </summary>
public sealed class LockHorizon
{
    private readonly Lock _gate = new();

    /// <summary>Objects read that carried a lock.</summary>
    public int Locked { get; private set; }

    /// <summary>The earliest retain-until date; null: no lock was seen.</summary>
    public DateTimeOffset? Earliest { get; private set; }

    /// <summary>The latest retain-until date; null: no lock was seen.</summary>
    public DateTimeOffset? Latest { get; private set; }

    /// <summary>Counts <paramref name="info"/>'s lock, if it has one.</summary>
    public void See(ObjectInfo? info)
    {
        if (info?.LockedUntil is not { } until) return;
        lock (_gate)
        {
            Locked++;
            if (Earliest is null || until < Earliest) Earliest = until;
            if (Latest is null || until > Latest) Latest = until;
        }
    }

    /// <summary>One line: "no locks", or "N objects read are locked until EARLIEST .. LATEST".</summary>
    public override string ToString() => Earliest is { } e && Latest is { } l
        ? $"{Locked} objects read are locked, until {e.UtcDateTime:u} (earliest) .. {l.UtcDateTime:u} (latest)"
        : "no locks";
}

/// <summary>A store seen through a <see cref="LockHorizon"/>: every object read or looked at adds its lock to it.</summary>
public sealed class LockWatchingStore(IObjectStore inner, LockHorizon horizon) : IObjectStore
{
    /// <summary>What was seen so far.</summary>
    public LockHorizon Horizon => horizon;

    /// <inheritdoc />
    public string Description => inner.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => inner.LargeWriteProbe;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => inner.RetentionProbe;

    /// <inheritdoc />
    public FallbackObjectStore? Fallback => inner.Fallback;

    /// <inheritdoc />
    public Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct) =>
        inner.PutIfAbsentAsync(key, content, metadata, ct);

    /// <inheritdoc />
    public async Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
    {
        var obj = await inner.OpenReadAsync(key, ct).ConfigureAwait(false);
        horizon.See(obj?.Info);
        return obj;
    }

    /// <inheritdoc />
    public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct)
    {
        var info = await inner.GetInfoAsync(key, ct).ConfigureAwait(false);
        horizon.See(info);
        return info;
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ListedObject> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        inner.RemoveAbandonedWritesAsync(before, dryRun, ct);
}
