namespace CloudArchive.Core.Storage;

/// <summary>
/// Exponential backoff with full jitter inside a bounded time budget: transient store faults are retried
/// until the budget is spent, then the last fault is raised.
/// </summary>
public sealed record RetryPolicy(TimeSpan Budget, TimeSpan FirstDelay, TimeSpan MaxDelay)
{
    /// <summary>Up to 60 s of retries, from 100 ms to 5 s apart.</summary>
    public static RetryPolicy Default { get; } = new(TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));
    /// <summary>No retries: the first fault is raised.</summary>
    public static RetryPolicy None { get; } = new(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero);

    /// <summary>Runs <paramref name="attempt"/>, retrying transient <see cref="StoreUnavailableException"/>s within the
    /// budget; <paramref name="what"/> names it in messages.</summary>
    public async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> attempt, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + Budget;
        var delay = FirstDelay;
        for (var n = 1; ; n++)
        {
            try
            {
                return await attempt(ct).ConfigureAwait(false);
            }
            catch (StoreUnavailableException e) when (e.Transient)
            {
                var wait = TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * delay.TotalMilliseconds);
                if (DateTime.UtcNow + wait >= deadline)
                    throw new StoreUnavailableException($"{e.Message} (gave up after {n} attempts in {Budget.TotalSeconds:0.#} s)", false, e);
                // One line per operation (the first retry); each further attempt only with --log-level debug.
                var message = e.Message.StartsWith(what, StringComparison.Ordinal) ? e.Message : $"{what}: {e.Message}";
                if (n == 1) Log.Warn($"{message}; retrying for up to {Budget.TotalSeconds:0.#} s");
                else Log.Debug($"{message}; retrying in {wait.TotalMilliseconds:0} ms (attempt {n})");
                await Task.Delay(wait, ct).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(MaxDelay.Ticks, delay.Ticks * 2));
            }
        }
    }
}

/// <summary>Adds bounded retries of transient faults to any backend, so each backend reports faults and nothing more.</summary>
public sealed class RetryingObjectStore(IObjectStore inner, RetryPolicy policy) : IObjectStore
{
    /// <inheritdoc />
    public string Description => inner.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => inner.LargeWriteProbe;

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
