using System.Diagnostics;
using CloudArchive.Core.Spool;

using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>
/// Async push, in the manner of pgBackRest's archive-async: the wal-push PostgreSQL runs for a segment
/// makes sure one background worker runs, then waits until the worker reports *that* segment durably
/// stored (exit 0) or failed (the worker's exit code and reason). The worker pushes every segment
/// PostgreSQL has marked ready, several at once, so a burst of WAL is archived on every core while
/// PostgreSQL's archiver still calls one archive_command at a time.
/// </summary>
internal sealed class AsyncArchiver(ArchiveQueue queue)
{
    /// <summary>How long a worker with nothing to do waits for more WAL before it exits.</summary>
    public static readonly TimeSpan IdleExit = TimeSpan.FromSeconds(3);

    /// <summary>The foreground: exits once the worker has an outcome for <paramref name="name"/>.</summary>
    /// <param name="startWorker">Starts a detached worker process.</param>
    /// <param name="pushHere">Pushes the segment in this process: used when no worker can be started.</param>
    public async Task<bool> AwaitAsync(WalFileName name, string path, Action startWorker, Func<Task> pushHere, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var lastStart = TimeSpan.MinValue;
        var delay = 2;
        while (true)
        {
            if (queue.TakeDone(name, path)) return true;
            if (queue.TakeFailure(name) is { } failure) throw failure;
            if (!SpoolLock.IsHeld(queue.LockPath))
            {
                // A worker that is not running yet, or finished just before our segment became ready.
                if (lastStart != TimeSpan.MinValue && clock.Elapsed - lastStart > TimeSpan.FromSeconds(5) && !queue.HasOutcome(name))
                {
                    Log.Warn($"the async push worker did not start (see {queue.LogPath}); pushing {name.Name} in this process");
                    await pushHere().ConfigureAwait(false);
                    return false;
                }
                if (lastStart == TimeSpan.MinValue || clock.Elapsed - lastStart > TimeSpan.FromSeconds(1))
                {
                    startWorker();
                    lastStart = clock.Elapsed;
                }
            }
            if (clock.Elapsed > timeout)
                throw new PushStillRunningException(
                    $"async push of {name.Name} did not finish within {timeout.TotalSeconds:0} s (the worker is behind or the store is slow; see " +
                        $"{queue.LogPath}); PostgreSQL will retry");
            await Task.Delay(delay, ct).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 25);
        }
    }

    /// <summary>The worker: pushes ready files, <paramref name="jobs"/> at a time, until none has come for <see cref="IdleExit"/>.</summary>
    public async Task RunAsync(WalArchive archive, int jobs, CancellationToken ct)
    {
        queue.Prune();
        var inFlight = new Dictionary<string, Task>();
        // Pushed by this worker: PostgreSQL renames .ready to .done a moment after its wal-push took the
        // outcome, so a file stays "ready" briefly after it is done; it is pushed again only if PostgreSQL
        // still wants it seconds later (its wal-push died before it could exit 0).
        var pushed = new Dictionary<string, TimeSpan>();
        var idle = Stopwatch.StartNew();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            foreach (var name in queue.Ready())
            {
                if (inFlight.Count >= jobs) break;
                if (inFlight.ContainsKey(name.Name) || queue.HasOutcome(name)) continue;
                if (pushed.TryGetValue(name.Name, out var when) && clock.Elapsed - when < TimeSpan.FromSeconds(2)) continue;
                pushed[name.Name] = clock.Elapsed;
                inFlight[name.Name] = Task.Run(() => PushOneAsync(archive, name, ct), ct);
            }
            if (inFlight.Count == 0)
            {
                if (idle.Elapsed > IdleExit) return;
                await Task.Delay(20, ct).ConfigureAwait(false);
                continue;
            }
            await Task.WhenAny(inFlight.Values).ConfigureAwait(false);
            foreach (var (key, task) in inFlight.ToList())
                if (task.IsCompleted) inFlight.Remove(key);
            idle.Restart();
        }
    }

    private async Task PushOneAsync(WalArchive archive, WalFileName name, CancellationToken ct)
    {
        var path = Path.Combine(queue.PgWal, name.Name);
        var before = FileIdentity.Of(path);
        if (before is null)
        {
            // Archived and removed meanwhile (nothing to report), unless PostgreSQL still waits for it.
            if (queue.IsReady(name)) queue.MarkFailed(name, ExitCode.InvalidInput, $"cannot read '{path}': no such file");
            return;
        }
        try
        {
            var result = await archive.PushAsync(path, ct).ConfigureAwait(false);
            if (FileIdentity.Of(path) != before)
            {
                queue.MarkFailed(name, ExitCode.InvalidInput, $"{path} changed while it was archived");
                return;
            }
            queue.MarkDone(name, before);
            Log.Info($"archived {name.Name} in {result.Elapsed.TotalMilliseconds:0} ms{(result.AlreadyArchived ? " (already archived, identical)" : "")}");
        }
        catch (CloudArchiveException e)
        {
            Log.Error($"{name.Name}: {e.Message}");
            queue.MarkFailed(name, e.ExitCode, (e is StoreUnavailableException { Outage: true } ? ArchiveQueue.OutageMark : "") + e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.Error($"{name.Name}: internal error: {e.Message}");
            queue.MarkFailed(name, ExitCode.Internal, "internal error: " + e.Message);
        }
    }
}

