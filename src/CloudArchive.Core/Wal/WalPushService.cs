using System.Diagnostics;
using System.Globalization;
using CloudArchive.Core.Spool;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>What archive_command's push is configured to do.</summary>
/// <param name="CompressionLevel">zstd level.</param>
/// <param name="Async">Push through the background worker when the file is one PostgreSQL marked ready.</param>
/// <param name="AsyncWait">How long an async push waits for the worker to store its segment.</param>
/// <param name="MaxQueueBytes">Past this backlog a segment whose own push failed is dropped; 0: never.</param>
/// <param name="SpoolDir">The configured spool; null: pg_wal/.cloudarchive.</param>
/// <param name="AsyncJobs">Segments the worker pushes at once.</param>
public sealed record WalPushOptions(int CompressionLevel, bool Async, TimeSpan AsyncWait, long MaxQueueBytes, string? SpoolDir, int AsyncJobs);

/// <summary>
/// archive_command's use case: push one WAL file, in this process or through the async worker, with the drop
/// policy of <see cref="WalPushOptions.MaxQueueBytes"/>; and the async worker itself. Every success is durable
/// before it is returned; a failure is an exception with its exit code.
/// </summary>
public sealed class WalPushService(Func<IObjectStore> openStore, IWorkerStarter workers, WalPushOptions options)
{
    /// <summary>Archives <paramref name="path"/> (archive_command's %p); returns only once it is stored (or dropped by policy).</summary>
    public async Task PushAsync(string path, CancellationToken ct)
    {
        var name = WalFileName.Parse(Path.GetFileName(path));
        var queue = QueueFor(path);
        try
        {
            if (!(options.Async && queue is not null && queue.IsReady(name))) await CatchUpAsync(queue, ct).ConfigureAwait(false);
            await PushOnceAsync(path, name, queue, ct).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e) when (e.Outage && options.MaxQueueBytes > 0
                                              && queue is not null && name.Kind == WalFileKind.Segment && queue.WaitingBytes() is var waiting
                                              && waiting > options.MaxQueueBytes)
        {
            // Only a segment whose own push failed because the store was unreachable (past its retries) while the backlog
            // is over the limit: a burst that a working store is draining never loses a segment, nor does a store that
            // refuses (wrong credentials, no such bucket, not a store), which is a mistake to fix, not an outage to ride out.
            Log.Error(e.Message.ReplaceLineEndings(" "));
            Drop(queue, name, waiting, options.MaxQueueBytes);
        }
    }

    /// <summary>
    /// The async worker for the pg_wal that holds <paramref name="path"/>: pushes every ready file until none has
    /// come for a while. Returns at once when another worker holds the spool's lock.
    /// </summary>
    public async Task RunWorkerAsync(string path, CancellationToken ct)
    {
        var queue = QueueFor(path)
                    ?? throw new CloudArchiveException(ExitCode.Usage, "the async push worker needs a WAL file in a pg_wal directory with archive_status");
        Log.Timestamps = true;
        queue.EnsureSpool();
        SpoolLock? held = null;
        for (var i = 0; i < 25 && held is null; i++)
        {
            held = SpoolLock.TryAcquire(queue.LockPath);
            if (held is null) await Task.Delay(20, ct).ConfigureAwait(false);
        }
        if (held is null) return; // another worker runs
        using (held)
        {
            var store = Open(queue);
            Log.Info($"async push worker {Environment.ProcessId} started: {options.AsyncJobs} at a time to {store.Description}");
            await CatchUpAsync(queue, ct, store).ConfigureAwait(false);
            await new AsyncArchiver(queue).RunAsync(new WalArchive(store, options.CompressionLevel, zstdWorkers: 1), options.AsyncJobs, ct)
                .ConfigureAwait(false);
            // Once the queue is empty: what the second store missed meanwhile (--store-2-mode best-effort).
            await CatchUpAsync(queue, ct, store, int.MaxValue).ConfigureAwait(false);
            Log.Info($"async push worker {Environment.ProcessId}: nothing left to push, exiting");
        }
    }

    /// <summary>
    /// The async queue of the pg_wal that holds <paramref name="path"/> (archive_command's %p is pg_wal/NAME);
    /// null when that directory has no archive_status, i.e. the file is not one PostgreSQL is archiving.
    /// </summary>
    private ArchiveQueue? QueueFor(string path)
    {
        var pgWal = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(Path.Combine(pgWal, "archive_status"))) return null;
        var spool = SpoolLocation.Resolve(options.SpoolDir, null) ?? Path.Combine(pgWal, SpoolLocation.DirectoryName);
        return new ArchiveQueue(pgWal, Path.Combine(spool, "push"));
    }

    /// <summary>The store; with a second store (--store-2), its backlog is the spool's.</summary>
    private IObjectStore Open(ArchiveQueue? queue)
    {
        var store = openStore();
        if (store.Mirror is { Backlog: null } mirror && SpoolRoot(queue) is { } root) mirror.Backlog = StoreBacklog.In(root);
        return store;
    }

    /// <summary>The spool of this pg_wal: --spool-dir, else pg_wal/.cloudarchive; null for a file PostgreSQL is not archiving.</summary>
    private string? SpoolRoot(ArchiveQueue? queue) =>
        SpoolLocation.Resolve(options.SpoolDir, null) ?? (queue is null ? null : Path.Combine(queue.PgWal, SpoolLocation.DirectoryName));

    /// <summary>
    /// The second store's backlog, caught up before this push (at most <paramref name="max"/> keys): then a push that failed
    /// on it and is retried finds the same bytes in both stores. Opens the store only when a backlog waits; a best-effort
    /// second store found down a moment ago is left for later.
    /// </summary>
    private async Task CatchUpAsync(ArchiveQueue? queue, CancellationToken ct, IObjectStore? open = null, int max = 64)
    {
        if (SpoolRoot(queue) is not { } root || StoreBacklog.Find(root) is not { HasEntries: true } backlog) return;
        var store = open ?? Open(queue);
        if (store.Mirror is not { } mirror || mirror.RecentlyDown) return;
        await Operations.SecondStoreCatchUp.RunAsync(mirror, max, ct).ConfigureAwait(false);
    }

    /// <summary>By the async worker when it runs for this pg_wal, else in this process.</summary>
    private async Task PushOnceAsync(string path, WalFileName name, ArchiveQueue? queue, CancellationToken ct)
    {
        if (options.Async && queue is not null && queue.IsReady(name))
        {
            // The worker talks to the store; this process opens it only if it has to push by itself.
            queue.EnsureSpool();
            var clock = Stopwatch.StartNew();
            var fullPath = Path.GetFullPath(path);
            var byWorker = await new AsyncArchiver(queue).AwaitAsync(name, fullPath,
                () => workers.Start(new PushWorker(fullPath, queue.LogPath)),
                () => new WalArchive(Open(queue), options.CompressionLevel).PushAsync(path, ct), options.AsyncWait, ct).ConfigureAwait(false);
            Log.Info($"archived {name}{(byWorker ? " by the async worker" : "")} ({clock.Elapsed.TotalMilliseconds:0} ms in this process)");
            return;
        }

        var store = Open(queue);
        var result = await new WalArchive(store, options.CompressionLevel).PushAsync(path, ct).ConfigureAwait(false);
        if (result.AlreadyArchived)
            Log.Notice($"{result.Name} was already archived with identical content in {store.Description}; nothing to do");
        else
            Log.Info($"archived {result.Name} to {store.Description}: {Output.Units.Mib(result.Size)} -> {Output.Units.Mib(result.StoredSize)} in " +
                $"{result.Elapsed.TotalMilliseconds:0} ms");
    }

    /// <summary>--max-queue-bytes: report success without archiving, loudly, so PostgreSQL can recycle pg_wal.</summary>
    private static void Drop(ArchiveQueue queue, WalFileName name, long waiting, long limit)
    {
        var message = $"DROPPED {name}: {Output.Units.Mib(waiting)} of WAL is waiting to be archived, over --max-queue-bytes {Output.Units.Mib(limit)}; "
                      + $"{name} is NOT archived and PostgreSQL will remove it. Point-in-time recovery cannot pass this segment: take a new base backup " +
                          $"once archiving works again";
        Log.Error(message);
        try
        {
            queue.EnsureSpool();
            File.AppendAllText(Path.Combine(queue.Dir, "dropped.log"), $"{DateTimeOffset.UtcNow:u} {message}\n");
        }
        catch (CloudArchiveException)
        {
            // The log line above is the report that matters; the spool file is a convenience.
        }
    }

}
