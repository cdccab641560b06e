using System.CommandLine;
using System.Globalization;
using CloudArchive.Core;
using CloudArchive.Core.Spool;
using CloudArchive.Core.Wal;

namespace CloudArchive.Cli;

/// <summary>
/// wal-fetch's prefetch: the foreground half (take a spooled segment, start the worker) and the hidden
/// `wal-prefetch` command that is the worker, started detached by wal-fetch.
/// </summary>
public static class WalPrefetchCommands
{
    public static readonly Option<string> Prefetch = new("--prefetch") { Description = $"Segments to fetch ahead into the spool, 0-{WalPrefetcher.MaxSegments} (CLOUDARCHIVE_PREFETCH; default 0: off)" };
    public static readonly Option<string> SpoolDir = new("--spool-dir") { Description = "Working area of async push and prefetch (CLOUDARCHIVE_SPOOL_DIR; default pg_wal/.cloudarchive of the data directory)" };
    private static readonly Option<string> SegmentSize = new("--segment-size") { Description = "WAL segment size in bytes" };
    private static readonly Option<string> WorkerPgData = new("--pgdata") { Description = "Data directory in recovery" };

    /// <summary>How long a restore_command waits for the segment the prefetcher is downloading.</summary>
    private static readonly TimeSpan WaitForDownload = TimeSpan.FromSeconds(30);

    /// <summary>The foreground's prefetch for one wal-fetch; null when prefetch is off or does not apply.</summary>
    public static ForegroundPrefetch? For(CommandContext ctx, string fileName, string? pgdata)
    {
        var count = ctx.Settings.GetInt(Prefetch, "CLOUDARCHIVE_PREFETCH", 0, 0, WalPrefetcher.MaxSegments);
        var configured = ctx.Settings.Get(SpoolDir, "CLOUDARCHIVE_SPOOL_DIR");
        // .history, .backup and .partial files are always fetched from the store: they are not read in sequence.
        if (count == 0 || !WalFileName.TryParse(fileName, out var name) || name.Kind != WalFileKind.Segment) return null;
        // pg_rewind --restore-target-wal runs restore_command, then removes and copies files all over the data directory:
        // a prefetch worker changing pg_wal/.cloudarchive meanwhile would make it fail half-way ("could not remove file").
        if (ProcessAncestry.Includes("pg_rewind"))
        {
            Log.Info("run by pg_rewind: fetching directly, without the prefetch spool");
            return null;
        }
        var dataDir = SpoolLocation.DataDirectory(pgdata);
        var root = SpoolLocation.Resolve(configured, dataDir);
        if (root is null)
        {
            Log.Info("prefetch is on, but there is no spool (not run in a data directory, no --spool-dir): fetching directly");
            return null;
        }
        try
        {
            var spool = PrefetchSpool.Open(root, StoreIdentity(ctx.Settings), dataDir);
            return spool.Claim() ? new ForegroundPrefetch(ctx, spool, name, count, dataDir) : null;
        }
        catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
        {
            // The spool only saves time: without it wal-fetch works as it always did.
            Log.Warn($"prefetch spool unusable, fetching directly: {e.Message}");
            return null;
        }
    }

    /// <summary>The hidden worker: `wal-prefetch NAME --segment-size S --prefetch N --spool-dir DIR [--pgdata DIR]`.</summary>
    public static IEnumerable<Command> Build()
    {
        var nameArg = new Argument<string>("name") { Description = "The segment just restored; the ones after it are fetched" };
        var worker = new Command("wal-prefetch", "Background worker of wal-fetch --prefetch") { nameArg, SegmentSize, Prefetch, SpoolDir, WorkerPgData };
        worker.Hidden = true;
        CommandRunner.SetAction(worker, async (ctx, ct) =>
        {
            var after = WalFileName.Parse(ctx.Parse.GetValue(nameArg)!);
            var count = ctx.Settings.GetInt(Prefetch, "CLOUDARCHIVE_PREFETCH", 0, 1, WalPrefetcher.MaxSegments);
            var root = ctx.Parse.GetValue(SpoolDir);
            if (after.Kind != WalFileKind.Segment || root is null
                || !int.TryParse(ctx.Parse.GetValue(SegmentSize), NumberStyles.None, CultureInfo.InvariantCulture, out var size) || !WalFileName.IsValidSegmentSize(size))
                throw new CloudArchiveException(ExitCode.Usage, "wal-prefetch needs a segment name, a valid --segment-size and --spool-dir");
            var spool = PrefetchSpool.Open(root, StoreIdentity(ctx.Settings), ctx.Parse.GetValue(WorkerPgData));
            WalPrefetcher? prefetcher = null;
            // Recovery moves on while a batch downloads: follow it (POSITION) instead of exiting, and look once
            // more after letting the lock go, since a wal-fetch that saw it held started no worker.
            for (WalFileName? next = after; next is not null; next = spool.PositionAfter(after))
            {
                using var held = SpoolLock.TryAcquire(spool.LockPath);
                if (held is null) return ExitCode.Ok;   // another worker runs
                if (!spool.IsClaimed())
                {
                    Log.Info($"prefetch spool {spool.Dir} now belongs to another store or cluster: nothing to do");
                    return ExitCode.Ok;
                }
                spool.TrimLog();
                prefetcher ??= new WalPrefetcher(new WalArchive(ctx.OpenStore(), 0), spool);
                for (; next is not null; next = spool.PositionAfter(after))
                {
                    after = next;
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    var done = await prefetcher.RunAsync(after, size, count, ct).ConfigureAwait(false);
                    Log.Info($"prefetch after {after}: {done} segments spooled in {clock.Elapsed.TotalMilliseconds:0} ms");
                }
            }
            return ExitCode.Ok;
        });
        return [worker];
    }

    /// <summary>
    /// What names the store for the spool's IDENTITY: its URL and the non-secret settings that say which server
    /// or account it is on. Only a SHA-256 of this reaches the disk.
    /// </summary>
    private static string StoreIdentity(Settings settings)
    {
        var azure = settings.Lookup("AZURE_STORAGE_CONNECTION_STRING") is { } conn
            ? string.Join(';', conn.Split(';').Where(p => p.StartsWith("AccountName=", StringComparison.OrdinalIgnoreCase) || p.StartsWith("BlobEndpoint=", StringComparison.OrdinalIgnoreCase)))
            : "";
        return string.Join('\n',
            "store=" + settings.RequireStore(),
            "s3-endpoint=" + settings.Lookup("CLOUDARCHIVE_S3_ENDPOINT"),
            "azure-account-url=" + settings.Lookup("CLOUDARCHIVE_AZURE_ACCOUNT_URL"),
            "azure-connection=" + azure);
    }

    /// <summary>The prefetch of one foreground wal-fetch.</summary>
    public sealed class ForegroundPrefetch(CommandContext ctx, PrefetchSpool spool, WalFileName name, int count, string? dataDir)
    {
        /// <summary>The segment from the spool, or from the download the prefetcher has under way; false: fetch it from the store.</summary>
        public async Task<bool> TryTakeAsync(string destination, CancellationToken ct)
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
        public void Continue(string destination)
        {
            try
            {
                spool.RemoveBehind(name);
                // Recorded before looking at the lock: a worker that is finishing sees it after letting the lock go.
                spool.RecordPosition(name);
                if (SpoolLock.IsHeld(spool.LockPath)) return;
                var size = SegmentSizeOf(destination);
                if (size is null) return;
                Background.Start(WorkerArgs(size.Value), spool.LogPath);
            }
            catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
            {
                Log.Warn($"prefetch not started: {e.Message}");
            }
        }

        private List<string> WorkerArgs(long segmentSize)
        {
            List<string> args = ["wal-prefetch", name.Name,
                "--segment-size", segmentSize.ToString(CultureInfo.InvariantCulture),
                "--prefetch", count.ToString(CultureInfo.InvariantCulture),
                "--spool-dir", Path.GetDirectoryName(spool.Dir)!];
            if (dataDir is not null) args.AddRange(["--pgdata", dataDir]);
            // The same store settings the foreground got; the environment is inherited.
            if (ctx.Settings.ConfigPath is { } config) args.AddRange(["--config", config]);
            foreach (var option in new[] { Settings.Store, Settings.LogLevelOption, Settings.RetryTimeout }.Concat(Settings.StoreFlags.Values))
                if (ctx.Parse.GetValue(option) is { Length: > 0 } value) args.AddRange([option.Name, value]);
            return args;
        }

        private static long? SegmentSizeOf(string path)
        {
            using var f = File.OpenRead(path);
            return PrefetchSpool.ReadHeader(f)?.SegmentSize;
        }
    }
}
