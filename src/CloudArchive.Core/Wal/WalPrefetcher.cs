using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Wal;

/// <summary>
/// The background half of prefetch: downloads the next segments of a timeline into the spool, each verified
/// by wal-fetch's own path (SHA-256, hidden temp file), then renamed to its name.
/// </summary>
internal sealed class WalPrefetcher(WalArchive archive, PrefetchSpool spool)
{
    private const int Parallel = 3;

    /// <summary>Spools up to <paramref name="count"/> segments after <paramref name="after"/>; stops at the first one the store lacks.</summary>
    public async Task<int> RunAsync(WalFileName after, long segmentSize, int count, CancellationToken ct)
    {
        var first = after.SegmentNumber(segmentSize) + 1;
        var window = Enumerable.Range(0, count)
            .Select(i => first + (ulong)i)
            .TakeWhile(n => n / WalFileName.SegmentsPerXLogId(segmentSize) <= uint.MaxValue)
            .Select(n => WalFileName.ForSegment(after.Timeline, n, segmentSize))
            .ToList();

        // Under the lock no other worker writes: anything hidden was left by a killed one.
        foreach (var stale in spool.Hidden()) PrefetchSpool.TryDelete(stale);
        var last = window.Count == 0 ? after : window[^1];
        foreach (var (name, path) in spool.Spooled())
            if (name.Timeline != after.Timeline || PrefetchSpool.Compare(name, after) <= 0 || PrefetchSpool.Compare(name, last) > 0)
                PrefetchSpool.TryDelete(path);

        var spooled = spool.Spooled().Select(s => s.Name.Name).ToHashSet(StringComparer.Ordinal);
        var endAt = int.MaxValue;   // index of the first name the store does not have
        var stop = false;
        var done = 0;
        using var gate = new SemaphoreSlim(Parallel);
        var tasks = new List<Task>();
        for (var i = 0; i < window.Count; i++)
        {
            var name = window[i];
            if (spooled.Contains(name.Name)) continue;
            await gate.WaitAsync(ct).ConfigureAwait(false);
            if (Volatile.Read(ref endAt) < i || Volatile.Read(ref stop))
            {
                gate.Release();
                break;
            }
            var index = i;
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    switch (await SpoolOneAsync(name, ct).ConfigureAwait(false))
                    {
                        case Outcome.Spooled: Interlocked.Increment(ref done); break;
                        case Outcome.Absent: InterlockedMin(ref endAt, index); break;
                        case Outcome.Failed: Volatile.Write(ref stop, true); break;
                    }
                }
                finally
                {
                    gate.Release();
                }
            }, ct));
        }
        await Task.WhenAll(tasks).ConfigureAwait(false);

        // Files beyond the end of the archive (a gap) would never be asked for before it.
        if (endAt < window.Count)
            foreach (var name in window.Skip(endAt + 1)) PrefetchSpool.TryDelete(Path.Combine(spool.Dir, name.Name));
        return done;
    }

    private enum Outcome { Spooled, Absent, Failed, Skipped }

    private async Task<Outcome> SpoolOneAsync(WalFileName name, CancellationToken ct)
    {
        var staged = Path.Combine(spool.Dir, $".{name.Name}.prefetch");
        try
        {
            var result = await archive.FetchAsync(name.Name, staged, ct, streamed: false).ConfigureAwait(false);
            if (!result.Found) return Outcome.Absent;
            // Not synced to disk: a crash of the machine changes the boot id in IDENTITY, which empties the
            // spool before its files are used, and a crash of this process leaves the page cache intact.
            File.Move(staged, Path.Combine(spool.Dir, name.Name), overwrite: true);
            Log.Info($"prefetched {name} ({result.Size / 1048576.0:0.0} MiB in {result.Elapsed.TotalMilliseconds:0} ms)");
            return Outcome.Spooled;
        }
        catch (CorruptObjectException e)
        {
            // Only this name goes unspooled: the restore_command that asks for it fetches it and reports the corruption.
            Log.Warn($"not prefetched {name}: {e.Message}");
            return Outcome.Skipped;
        }
        catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
        {
            Log.Warn($"not prefetched {name}: {e.Message}; stopping this prefetch");
            return Outcome.Failed;
        }
        finally
        {
            PrefetchSpool.TryDelete(staged);
        }
    }

    private static void InterlockedMin(ref int target, int value)
    {
        int seen;
        while (value < (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}
