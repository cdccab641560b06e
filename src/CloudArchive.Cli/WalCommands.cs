using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CloudArchive.Core;
using CloudArchive.Core.Spool;
using CloudArchive.Core.Wal;

namespace CloudArchive.Cli;

/// <summary>wal-push (archive_command), wal-fetch (restore_command) and wal-list.</summary>
public static class WalCommands
{
    private static readonly Option<string> CompressLevel = new("--compress-level") { Description = "zstd level 1-19 (CLOUDARCHIVE_COMPRESS_LEVEL; default 3)" };
    private static readonly Option<string> PgData = new("--pgdata") { Description = "Data directory of the server in recovery (default: the working directory, as restore_command runs)" };
    private static readonly Option<bool> Json = new("--json") { Description = "Machine-readable output" };
    private static readonly Option<bool> Async = new("--async") { Description = "Push in a background worker that archives every ready segment in parallel (CLOUDARCHIVE_ASYNC=true)" };
    private static readonly Option<string> AsyncJobs = new("--async-jobs") { Description = "Segments the async worker pushes at once (CLOUDARCHIVE_ASYNC_JOBS; default: one per core)" };
    private static readonly Option<string> ArchiveTimeout = new("--archive-timeout") { Description = "Seconds a wal-push waits for the async worker to store its segment (CLOUDARCHIVE_ARCHIVE_TIMEOUT; default 60)" };
    private static readonly Option<string> MaxQueueBytes = new("--max-queue-bytes") { Description = "Past this much WAL waiting in pg_wal, segments are DROPPED, unarchived, so the disk does not fill (CLOUDARCHIVE_MAX_QUEUE_BYTES; e.g. 8GiB; default: no limit)" };
    private static readonly Option<bool> AsyncWorker = new("--async-worker") { Hidden = true };

    public static IEnumerable<Command> Build()
    {
        var pathArg = NoOptionLike(new Argument<string>("path") { Description = "The WAL file to archive (%p)" });
        var push = new Command("wal-push", "Archive one WAL file: archive_command = 'cloudarchive wal-push %p'")
        {
            pathArg, CompressLevel, Async, AsyncJobs, ArchiveTimeout, MaxQueueBytes, WalPrefetchCommands.SpoolDir, AsyncWorker,
        };
        CommandRunner.SetAction(push, async (ctx, ct) =>
        {
            var level = ctx.Settings.GetInt(CompressLevel, "CLOUDARCHIVE_COMPRESS_LEVEL", 3, 1, 19);
            var path = ctx.Parse.GetValue(pathArg)!;
            var name = WalFileName.Parse(Path.GetFileName(path));
            var queue = QueueFor(ctx, path);
            if (ctx.Parse.GetValue(AsyncWorker))
                return await RunWorkerAsync(ctx, ctx.OpenStore(), level, queue, ct).ConfigureAwait(false);

            var limit = ctx.Settings.GetBytes(MaxQueueBytes, "CLOUDARCHIVE_MAX_QUEUE_BYTES");
            try
            {
                return await PushAsync(ctx, path, name, level, queue, ct).ConfigureAwait(false);
            }
            catch (CloudArchiveException e) when (e.ExitCode == ExitCode.StoreUnavailable && e is not PushStillRunningException && limit > 0 && queue is not null
                                                  && name.Kind == WalFileKind.Segment && queue.WaitingBytes() is var waiting && waiting > limit)
            {
                // Only a segment whose own push failed (the store unreachable past its retries) while the backlog is
                // over the limit: a burst that a working store is draining never loses a segment.
                Log.Error(e.Message.ReplaceLineEndings(" "));
                Drop(queue, name, waiting, limit);
                return ExitCode.Ok;
            }
        });

        var nameArg = NoOptionLike(new Argument<string>("name") { Description = "The WAL file name PostgreSQL asks for (%f)" });
        var destArg = NoOptionLike(new Argument<string>("destination") { Description = "Where to write it (%p)" });
        var fetch = new Command("wal-fetch", "Restore one WAL file: restore_command = 'cloudarchive wal-fetch %f %p'")
            { nameArg, destArg, PgData, WalPrefetchCommands.Prefetch, WalPrefetchCommands.SpoolDir };
        CommandRunner.SetAction(fetch, async (ctx, ct) =>
        {
            var (name, destination) = (ctx.Parse.GetValue(nameArg)!, ctx.Parse.GetValue(destArg)!);
            var prefetch = WalPrefetchCommands.For(ctx, name, ctx.Parse.GetValue(PgData));
            if (prefetch is not null && await prefetch.TryTakeAsync(destination, ct).ConfigureAwait(false))
            {
                Log.Info($"restored {name} from the prefetch spool");
                prefetch.Continue(destination);
                return ExitCode.Ok;
            }
            var store = ctx.OpenStore();
            // In a data directory (restore_command's working directory, or --pgdata) segments must be this cluster's.
            var dataDir = SpoolLocation.DataDirectory(ctx.Parse.GetValue(PgData));
            var cluster = dataDir is not null ? ControlFile.TryRead(dataDir) : null;
            var result = await new WalArchive(store, 0).FetchAsync(name, destination, ct, cluster).ConfigureAwait(false);
            if (result.Found && dataDir is not null && result.Name.Kind == WalFileKind.Segment)
                await Core.Backup.RestoreLease.RenewFromDataDirectoryAsync(store, dataDir, result.Name, ct).ConfigureAwait(false);
            if (!result.Found)
            {
                // Normal at the end of recovery: PostgreSQL asks for the next file until one is missing.
                Log.Info($"{result.Name} is not in {store.Description}");
                return ExitCode.NotFound;
            }
            Log.Info($"restored {result.Name} from {store.Description} ({Mib(result.Size)} in {result.Elapsed.TotalMilliseconds:0} ms)");
            prefetch?.Continue(destination);
            return ExitCode.Ok;
        }, (parse, e) => RestoreCommandPolicy.For(e.ExitCode, parse.GetValue(PgData)));

        var list = new Command("wal-list", "List archived WAL per timeline as ranges, with gaps") { Json };
        CommandRunner.SetAction(list, async (ctx, ct) =>
        {
            var inventory = await new WalArchive(ctx.OpenStore(), 0).ListAsync(ct).ConfigureAwait(false);
            Console.Out.Write(ctx.Parse.GetValue(Json) ? ToJson(inventory) : ToText(inventory));
            return ExitCode.Ok;
        });
        return [push, fetch, list];
    }

    /// <summary>
    /// The async queue of the pg_wal that holds <paramref name="path"/> (archive_command's %p is pg_wal/NAME);
    /// null when that directory has no archive_status, i.e. the file is not one PostgreSQL is archiving.
    /// </summary>
    private static ArchiveQueue? QueueFor(CommandContext ctx, string path)
    {
        var pgWal = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(Path.Combine(pgWal, "archive_status"))) return null;
        var spool = SpoolLocation.Resolve(ctx.Settings.Get(WalPrefetchCommands.SpoolDir, "CLOUDARCHIVE_SPOOL_DIR"), null) ?? Path.Combine(pgWal, SpoolLocation.DirectoryName);
        return new ArchiveQueue(pgWal, Path.Combine(spool, "push"));
    }

    /// <summary>archive_command's push: by the async worker when it runs for this pg_wal, else in this process.</summary>
    private static async Task<ExitCode> PushAsync(CommandContext ctx, string path, WalFileName name, int level, ArchiveQueue? queue, CancellationToken ct)
    {
        if (ctx.Settings.GetBool(Async, "CLOUDARCHIVE_ASYNC") && queue is not null && queue.IsReady(name))
        {
            // The worker talks to the store; this process opens it only if it has to push by itself.
            ctx.Settings.RequireStore();
            queue.EnsureSpool();
            var timeout = ctx.Settings.GetInt(ArchiveTimeout, "CLOUDARCHIVE_ARCHIVE_TIMEOUT", 60, 1, 86400);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var byWorker = await new AsyncArchiver(queue).AwaitAsync(name, Path.GetFullPath(path),
                () => Background.Start([.. Environment.GetCommandLineArgs().Skip(1), "--async-worker"], queue.LogPath),
                () => new WalArchive(ctx.OpenStore(), level).PushAsync(path, ct), TimeSpan.FromSeconds(timeout), ct).ConfigureAwait(false);
            Log.Info($"archived {name}{(byWorker ? " by the async worker" : "")} ({clock.Elapsed.TotalMilliseconds:0} ms in this process)");
            return ExitCode.Ok;
        }

        var store = ctx.OpenStore();
        var archive = new WalArchive(store, level);
        var result = await archive.PushAsync(path, ct).ConfigureAwait(false);
        if (result.AlreadyArchived)
            Log.Notice($"{result.Name} was already archived with identical content in {store.Description}; nothing to do");
        else
            Log.Info($"archived {result.Name} to {store.Description}: {Mib(result.Size)} -> {Mib(result.StoredSize)} in {result.Elapsed.TotalMilliseconds:0} ms");
        return ExitCode.Ok;
    }

    private static async Task<ExitCode> RunWorkerAsync(CommandContext ctx, Core.Storage.IObjectStore store, int level, ArchiveQueue? queue, CancellationToken ct)
    {
        if (queue is null) throw new CloudArchiveException(ExitCode.Usage, "--async-worker needs a WAL file in a pg_wal directory with archive_status");
        Log.Timestamps = true;
        queue.EnsureSpool();
        SpoolLock? held = null;
        for (var i = 0; i < 25 && held is null; i++)
        {
            held = SpoolLock.TryAcquire(queue.LockPath);
            if (held is null) await Task.Delay(20, ct).ConfigureAwait(false);
        }
        if (held is null) return ExitCode.Ok; // another worker runs
        using (held)
        {
            var jobs = ctx.Settings.GetInt(AsyncJobs, "CLOUDARCHIVE_ASYNC_JOBS", Environment.ProcessorCount, 1, 64);
            Log.Info($"async push worker {Environment.ProcessId} started: {jobs} at a time to {store.Description}");
            await new AsyncArchiver(queue).RunAsync(new WalArchive(store, level, zstdWorkers: 1), jobs, ct).ConfigureAwait(false);
            Log.Info($"async push worker {Environment.ProcessId}: nothing left to push, exiting");
        }
        return ExitCode.Ok;
    }

    /// <summary>--max-queue-bytes: report success without archiving, loudly, so PostgreSQL can recycle pg_wal.</summary>
    private static void Drop(ArchiveQueue queue, WalFileName name, long waiting, long limit)
    {
        var message = $"DROPPED {name}: {Mib(waiting)} of WAL is waiting to be archived, over --max-queue-bytes {Mib(limit)}; "
                      + $"{name} is NOT archived and PostgreSQL will remove it. Point-in-time recovery cannot pass this segment: take a new base backup once archiving works again";
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

    /// <summary>An unknown flag must be a usage error, not taken for a file name (%p and %f never start with '-').</summary>
    private static Argument<string> NoOptionLike(Argument<string> argument)
    {
        argument.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
                if (token.Value.StartsWith('-'))
                    result.AddError($"unrecognized option '{token.Value}'");
        });
        return argument;
    }

    private static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.0} MiB");

    private static string ToText(WalInventory inv)
    {
        if (inv.Timelines.Count == 0) return "no WAL archived\n";
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"system identifier {inv.SystemIdentifier ?? "unknown"}, segment size {Mib(inv.SegmentSize ?? 0)}");
        foreach (var t in inv.Timelines)
        {
            w.WriteLine($"timeline {t.Timeline}: {t.Segments} segments{(t.HasHistoryFile ? $", history file {t.Timeline:X8}.history" : "")}");
            foreach (var r in t.Ranges)
                w.WriteLine($"  {r.First} - {r.Last}  {r.Segments,7} segments  {r.StartLsn} - {r.EndLsn}");
            foreach (var g in t.Gaps)
                w.WriteLine($"  GAP {g.First} - {g.Last}  {g.Segments,7} missing   {g.StartLsn} - {g.EndLsn}");
            foreach (var p in t.Partials) w.WriteLine($"  partial {p}");
            foreach (var b in t.BackupHistoryFiles) w.WriteLine($"  backup history {b}");
        }
        if (inv.HasGaps) w.WriteLine("WARNING: the archive has gaps; recovery cannot replay past the first missing segment of a timeline");
        return w.ToString();
    }

    private static string ToJson(WalInventory inv)
    {
        using var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartObject();
            if (inv.SegmentSize is { } s && inv.SystemIdentifier is not null) j.WriteNumber("segmentSize", s);
            else j.WriteNull("segmentSize");
            j.WriteString("systemIdentifier", inv.SystemIdentifier);
            j.WriteBoolean("hasGaps", inv.HasGaps);
            j.WriteStartArray("timelines");
            foreach (var t in inv.Timelines)
            {
                j.WriteStartObject();
                j.WriteNumber("timeline", t.Timeline);
                j.WriteBoolean("historyFile", t.HasHistoryFile);
                j.WriteNumber("segments", t.Segments);
                WriteRanges(j, "ranges", t.Ranges);
                WriteRanges(j, "gaps", t.Gaps);
                WriteStrings(j, "partial", t.Partials);
                WriteStrings(j, "backupHistory", t.BackupHistoryFiles);
                j.WriteEndObject();
            }
            j.WriteEndArray();
            j.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteRanges(Utf8JsonWriter j, string name, IReadOnlyList<WalRange> ranges)
    {
        j.WriteStartArray(name);
        foreach (var r in ranges)
        {
            j.WriteStartObject();
            j.WriteString("first", r.First);
            j.WriteString("last", r.Last);
            j.WriteNumber("segments", r.Segments);
            j.WriteString("startLsn", r.StartLsn.ToString());
            j.WriteString("endLsn", r.EndLsn.ToString());
            j.WriteEndObject();
        }
        j.WriteEndArray();
    }

    private static void WriteStrings(Utf8JsonWriter j, string name, IReadOnlyList<string> items)
    {
        j.WriteStartArray(name);
        foreach (var i in items) j.WriteStringValue(i);
        j.WriteEndArray();
    }
}
