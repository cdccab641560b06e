namespace CloudArchive.Core.Storage;

/// <summary>Adds bounded retries of transient faults to any backend, so each backend reports faults and nothing more.</summary>
public sealed class RetryingObjectStore(IObjectStore inner, RetryPolicy policy) : IObjectStore
{
    /// <inheritdoc />
    public MirroredObjectStore? Mirror => inner.Mirror;

    /// <inheritdoc />
    public string Description => inner.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => inner.LargeWriteProbe;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => inner.RetentionProbe;

    /// <inheritdoc />
    public Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        var start = content.CanSeek ? content.Position : -1;
        var p = content.CanSeek ? policy : RetryPolicy.None;
        return p.RunAsync($"writing {key}", c =>
        {
            if (start >= 0) content.Position = start;
            return inner.PutIfAbsentAsync(key, content, metadata, c);
        }, ct);
    }

    /// <inheritdoc />
    public Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct) =>
        policy.RunAsync($"reading {key}", c => inner.OpenReadAsync(key, c), ct);

    /// <inheritdoc />
    public Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) =>
        policy.RunAsync($"reading {key}", c => inner.GetInfoAsync(key, c), ct);

    /// <inheritdoc />
    public async IAsyncEnumerable<ListedObject> ListAsync(string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        // A listing is retried as a whole only before its first item; later faults surface to the caller.
        var items = await policy.RunAsync($"listing {prefix}", async c =>
        {
            var e = inner.ListAsync(prefix, c).GetAsyncEnumerator(c);
            var has = await e.MoveNextAsync().ConfigureAwait(false);
            return (e, has);
        }, ct).ConfigureAwait(false);
        await using var en = items.e;
        if (!items.has) yield break;
        do yield return en.Current;
        while (await en.MoveNextAsync().ConfigureAwait(false));
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        policy.RunAsync("removing abandoned writes", c => inner.RemoveAbandonedWritesAsync(before, dryRun, c), ct);

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string key, CancellationToken ct) =>
        policy.RunAsync($"deleting {key}", c => inner.DeleteAsync(key, c), ct);
}
