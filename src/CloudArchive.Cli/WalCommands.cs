using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CloudArchive.Core;
using CloudArchive.Core.Wal;

namespace CloudArchive.Cli;

/// <summary>wal-push (archive_command), wal-fetch (restore_command) and wal-list.</summary>
public static class WalCommands
{
    private static readonly Option<string> CompressLevel = new("--compress-level") { Description = "zstd level 1-19 (CLOUDARCHIVE_COMPRESS_LEVEL; default 3)" };
    private static readonly Option<string> PgData = new("--pgdata") { Description = "Data directory of the server in recovery (default: the working directory, as restore_command runs)" };
    private static readonly Option<bool> Json = new("--json") { Description = "Machine-readable output" };

    public static IEnumerable<Command> Build()
    {
        var pathArg = NoOptionLike(new Argument<string>("path") { Description = "The WAL file to archive (%p)" });
        var push = new Command("wal-push", "Archive one WAL file: archive_command = 'cloudarchive wal-push %p'") { pathArg, CompressLevel };
        CommandRunner.SetAction(push, async (ctx, ct) =>
        {
            var level = ctx.Settings.GetInt(CompressLevel, "CLOUDARCHIVE_COMPRESS_LEVEL", 3, 1, 19);
            var store = ctx.OpenStore();
            var result = await new WalArchive(store, level).PushAsync(ctx.Parse.GetValue(pathArg)!, ct).ConfigureAwait(false);
            if (result.AlreadyArchived)
                Log.Notice($"{result.Name} was already archived with identical content in {store.Description}; nothing to do");
            else
                Log.Info($"archived {result.Name} to {store.Description}: {Mib(result.Size)} -> {Mib(result.StoredSize)} in {result.Elapsed.TotalMilliseconds:0} ms");
            return ExitCode.Ok;
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
            var result = await new WalArchive(store, 0).FetchAsync(name, destination, ct).ConfigureAwait(false);
            if (!result.Found)
            {
                // Normal at the end of recovery: PostgreSQL asks for the next file until one is missing.
                Log.Info($"{result.Name} is not in {store.Description}");
                return ExitCode.NotFound;
            }
            Log.Info($"restored {result.Name} from {store.Description} ({Mib(result.Size)} in {result.Elapsed.TotalMilliseconds:0} ms)");
            prefetch?.Continue(destination);
            return ExitCode.Ok;
        }, (ctx, e) => RestoreCommandPolicy.For(e.ExitCode, ctx.Parse.GetValue(PgData)));

        var list = new Command("wal-list", "List archived WAL per timeline as ranges, with gaps") { Json };
        CommandRunner.SetAction(list, async (ctx, ct) =>
        {
            var inventory = await new WalArchive(ctx.OpenStore(), 0).ListAsync(ct).ConfigureAwait(false);
            Console.Out.Write(ctx.Parse.GetValue(Json) ? ToJson(inventory) : ToText(inventory));
            return ExitCode.Ok;
        });
        return [push, fetch, list];
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
