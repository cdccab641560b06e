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
