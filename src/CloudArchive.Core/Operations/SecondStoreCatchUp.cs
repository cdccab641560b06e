using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Operations;

/// <summary>What a catch-up of the second store's backlog did.</summary>
/// <param name="Settled">Keys now in the second store as in the first (or gone from the first).</param>
/// <param name="Left">Keys still waiting (a conflict, a corrupt object, or more than one run takes).</param>
/// <param name="Down">The second store could not be reached: nothing was copied.</param>
public sealed record CatchUpResult(int Settled, int Left, bool Down);

/// <summary>
/// The second store's backlog caught up from the first: each key copied as copy copies it (staged, checked against its
/// record, conditional put, read back: the same ciphertext), then removed from the backlog. Conflicts and corrupt objects
/// stay in the backlog, reported loudly. Run by wal-push before its own push, by the async worker once its queue is empty,
/// and by the agent between requests.
/// </summary>
public static class SecondStoreCatchUp
{
    /// <summary>Catches up at most <paramref name="max"/> keys, oldest first; nothing to do: null.</summary>
    /// <exception cref="CloudArchiveException">In required mode, when the second store cannot be reached.</exception>
    public static async Task<CatchUpResult?> RunAsync(MirroredObjectStore mirror, int max, CancellationToken ct)
    {
        if (mirror.Backlog is not { HasEntries: true } backlog) return null;
        var waiting = backlog.Read();
        if (waiting.Count == 0) return null;
        var batch = waiting.Take(max).Select(e => e.Key).ToList();
        try
        {
            var (report, settled) = await new ArchiveCopier(mirror.First, mirror.Second, mirror.Keys, jobs: 4)
                .CopyKeysAsync(batch, ct).ConfigureAwait(false);
            backlog.Remove(settled);
            backlog.ClearDown();
            foreach (var line in report.Conflicts.Concat(report.Corrupt))
                Log.Warn($"SECOND STORE BEHIND: {line}; it stays in the backlog {backlog.Directory}");
            var left = waiting.Count - settled.Count;
            Log.Info($"second store {mirror.Second.Description}: {settled.Count} backlog objects caught up, {left} waiting");
            return new CatchUpResult(settled.Count, left, false);
        }
        catch (CloudArchiveException e) when (mirror.Mode == SecondStoreMode.BestEffort)
        {
            if (e is StoreUnavailableException { Outage: true }) backlog.MarkDown();
            Log.Warn($"SECOND STORE BEHIND: {waiting.Count} objects wait for {mirror.Second.Description}, which cannot be written now " +
                $"({e.Message.ReplaceLineEndings(" ")})");
            return new CatchUpResult(0, waiting.Count, true);
        }
    }
}
