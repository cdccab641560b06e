using System.Diagnostics;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Spool;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>What restore_command's fetch is configured to do.</summary>
/// <param name="Prefetch">Segments to fetch ahead into the spool; 0: off.</param>
/// <param name="SpoolDir">The configured spool; null: pg_wal/.cloudarchive of the data directory.</param>
/// <param name="PgData">The data directory in recovery; null: the working directory, as restore_command runs.</param>
/// <param name="StoreIdentity">What names the store (see <see cref="StoreIdentity"/>); only its hash reaches the disk.</param>
/// <param name="RunByPgRewind">pg_rewind runs this restore_command: no prefetch, it rewrites the data directory meanwhile.</param>
public sealed record WalFetchOptions(int Prefetch, string? SpoolDir, string? PgData, string StoreIdentity, bool RunByPgRewind = false);

/// <summary>
/// restore_command's use case: fetch one WAL file to its destination (from the prefetch spool when it holds it,
/// else from the store), keep the restore lease of a data directory in recovery, keep the prefetcher going;
/// and the prefetch worker itself.
/// </summary>
public sealed class WalFetchService(Func<IObjectStore> openStore, IWorkerStarter workers, WalFetchOptions options)
{
    /// <summary>How long a restore_command waits for the segment the prefetcher is downloading.</summary>
    private static readonly TimeSpan WaitForDownload = TimeSpan.FromSeconds(30);

    /// <summary>True when <paramref name="fileName"/> is now at <paramref name="destination"/>; false: not in the archive.</summary>
    public async Task<bool> FetchAsync(string fileName, string destination, CancellationToken ct)
    {
        var prefetch = OpenPrefetch(fileName);
        if (prefetch is not null && await TryTakeAsync(prefetch.Value.Spool, prefetch.Value.Name, destination, ct).ConfigureAwait(false))
        {
            Log.Info($"restored {fileName} from the prefetch spool");
            Continue(prefetch.Value.Spool, prefetch.Value.Name, destination);
            return true;
        }
        var store = openStore();
        // In a data directory (restore_command's working directory, or --pgdata) segments must be this cluster's.
        var dataDir = SpoolLocation.DataDirectory(options.PgData);
        var cluster = dataDir is not null ? ControlFile.TryRead(dataDir) : null;
        var result = await new WalArchive(store, 0).FetchAsync(fileName, destination, ct, cluster).ConfigureAwait(false);
        if (result.Found && dataDir is not null && result.Name.Kind == WalFileKind.Segment)
            await RestoreLease.RenewFromDataDirectoryAsync(store, dataDir, result.Name, ct).ConfigureAwait(false);
        if (!result.Found)
        {
            // Normal at the end of recovery: PostgreSQL asks for the next file until one is missing.
            Log.Info($"{result.Name} is not in {store.Description}");
            return false;
        }
        Log.Info($"restored {result.Name} from {store.Description} ({Output.Units.Mib(result.Size)} in {result.Elapsed.TotalMilliseconds:0} ms)");
        if (prefetch is not null) Continue(prefetch.Value.Spool, prefetch.Value.Name, destination);
        return true;
    }

    /// <summary>
    /// The prefetch worker: fetches segments after <paramref name="worker"/>'s, following recovery's position
    /// while it moves on; returns at once when another worker holds the spool's lock.
    /// </summary>
    public async Task RunWorkerAsync(PrefetchWorker worker, CancellationToken ct)
    {
        var after = worker.After;
        var spool = PrefetchSpool.Open(worker.SpoolRoot, options.StoreIdentity, worker.DataDirectory);
        WalPrefetcher? prefetcher = null;
        // Recovery moves on while a batch downloads: follow it (POSITION) instead of exiting, and look once
        // more after letting the lock go, since a wal-fetch that saw it held started no worker.
        for (WalFileName? next = after; next is not null; next = spool.PositionAfter(after))
        {
            using var held = SpoolLock.TryAcquire(spool.LockPath);
            if (held is null) return;   // another worker runs
            if (!spool.IsClaimed())
            {
                Log.Info($"prefetch spool {spool.Dir} now belongs to another store or cluster: nothing to do");
                return;
            }
            spool.TrimLog();
            prefetcher ??= new WalPrefetcher(new WalArchive(openStore(), 0), spool);
            for (; next is not null; next = spool.PositionAfter(after))
            {
                after = next;
                var clock = Stopwatch.StartNew();
                var done = await prefetcher.RunAsync(after, worker.SegmentSize, worker.Count, ct).ConfigureAwait(false);
                Log.Info($"prefetch after {after}: {done} segments spooled in {clock.Elapsed.TotalMilliseconds:0} ms");
            }
        }
    }

    /// <summary>The spool of this fetch; null when prefetch is off or does not apply.</summary>
    private (PrefetchSpool Spool, WalFileName Name)? OpenPrefetch(string fileName)
    {
        // .history, .backup and .partial files are always fetched from the store: they are not read in sequence.
        if (options.Prefetch == 0 || !WalFileName.TryParse(fileName, out var name) || name.Kind != WalFileKind.Segment) return null;
        // pg_rewind --restore-target-wal runs restore_command, then removes and copies files all over the data directory:
        // a prefetch worker changing pg_wal/.cloudarchive meanwhile would make it fail half-way ("could not remove file").
        if (options.RunByPgRewind)
        {
            Log.Info("run by pg_rewind: fetching directly, without the prefetch spool");
            return null;
        }
        var root = SpoolLocation.Resolve(options.SpoolDir, SpoolLocation.DataDirectory(options.PgData));
        if (root is null)
        {
            Log.Info("prefetch is on, but there is no spool (not run in a data directory, no --spool-dir): fetching directly");
            return null;
        }
        try
        {
            var spool = PrefetchSpool.Open(root, options.StoreIdentity, SpoolLocation.DataDirectory(options.PgData));
            return spool.Claim() ? (spool, name) : null;
        }
        catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
        {
            // The spool only saves time: without it wal-fetch works as it always did.
            Log.Warn($"prefetch spool unusable, fetching directly: {e.Message}");
            return null;
        }
    }

    /// <summary>The segment from the spool, or from the download the prefetcher has under way; false: fetch it from the store.</summary>
    private static async Task<bool> TryTakeAsync(PrefetchSpool spool, WalFileName name, string destination, CancellationToken ct)
    {
        try
        {
            return spool.TryTake(name, destination) || await spool.WaitAndTakeAsync(name, destination, WaitForDownload, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warn($"prefetch spool: {e.Message}; fetching from the store");
            return false;
        }
    }

    /// <summary>After the segment is at <paramref name="destination"/>: drops what is behind it, starts the prefetcher unless one runs.</summary>
    private void Continue(PrefetchSpool spool, WalFileName name, string destination)
    {
        try
        {
            spool.RemoveBehind(name);
            // Recorded before looking at the lock: a worker that is finishing sees it after letting the lock go.
            spool.RecordPosition(name);
            if (SpoolLock.IsHeld(spool.LockPath)) return;
            long? size;
            using (var f = File.OpenRead(destination))
                size = PrefetchSpool.ReadHeader(f)?.SegmentSize;
            if (size is null) return;
            workers.Start(new PrefetchWorker(name, size.Value, options.Prefetch, Path.GetDirectoryName(spool.Dir)!,
                SpoolLocation.DataDirectory(options.PgData), spool.LogPath));
        }
        catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
        {
            Log.Warn($"prefetch not started: {e.Message}");
        }
    }
}
