using CloudArchive.Core.Wal;

namespace CloudArchive.Cli;

/// <summary>wal-push (archive_command), wal-fetch (restore_command), wal-list, and the hidden commands of their background workers.</summary>
internal static class WalCommands
{
    private static readonly Option<string> PgData = new("--pgdata") { Description = "Data directory of the server in recovery (default: the working " +
        "directory, as restore_command runs)" };
    private static readonly Option<string> SegmentSize = new("--segment-size") { Description = "WAL segment size in bytes" };

    /// <summary>
    /// A drill's restore_command: the inherited descriptor of the socket pair on which the drill process serves the fetch
    /// (its server has no store credentials, and its sandbox connects to no socket).
    /// </summary>
    internal static readonly Option<int?> DrillFd = new("--drill-fd") { Description = "The drill's WAL channel (set by drill)", Hidden = true };

    /// <summary>The drill's random token, which its WAL channel requires.</summary>
    internal static readonly Option<string> DrillToken = new("--drill-token") { Description = "The drill's token (set by drill)", Hidden = true };

    public static IEnumerable<Command> Build()
    {
        var pathArg = NoOptionLike(new Argument<string>("path") { Description = "The WAL file to archive (%p)" });
        var push = new Command("wal-push", "Archive one WAL file (PostgreSQL's archive_command). Example: archive_command = 'cloudarchive wal-push %p'") { pathArg };
        CommandRunner.SetAction(push, async (ctx, ct) =>
        {
            var path = ctx.Parse.GetValue(pathArg)!;
            if (await ViaAgentAsync(ctx, AgentPushRequest(ctx, path), ct).ConfigureAwait(false) is { } served) return served;
            await PushService(ctx, () => ctx.OpenStore(SegmentSystemId(path))).PushAsync(path, ct).ConfigureAwait(false);
            return ExitCode.Ok;
        });

        var workerPathArg = new Argument<string>("path") { Description = "A WAL file in the pg_wal to archive" };
        var pushWorker = new Command(Background.PushWorkerCommand, "Background worker of wal-push --async") { workerPathArg };
        CommandRunner.SetAction(pushWorker, async (ctx, ct) =>
        {
            await PushService(ctx).RunWorkerAsync(ctx.Parse.GetValue(workerPathArg)!, ct).ConfigureAwait(false);
            return ExitCode.Ok;
        });

        var nameArg = NoOptionLike(new Argument<string>("name") { Description = "The WAL file name PostgreSQL asks for (%f)" });
        var destArg = NoOptionLike(new Argument<string>("destination") { Description = "Where to write it (%p)" });
        var fetch = new Command("wal-fetch", "Restore one WAL file, verified (PostgreSQL's restore_command). Example: restore_command = 'cloudarchive wal-fetch %f %p'")
            { nameArg, destArg, PgData, DrillFd, DrillToken };
        CommandRunner.SetAction(fetch, async (ctx, ct) =>
        {
            if (ctx.Parse.GetValue(DrillFd) is { } drillFd)
                return ViaDrill(drillFd, ctx.Parse.GetValue(DrillToken) ?? "", ctx.Parse.GetValue(nameArg)!, ctx.Parse.GetValue(destArg)!);
            if (await ViaAgentAsync(ctx, AgentFetchRequest(ctx, ctx.Parse.GetValue(nameArg)!, ctx.Parse.GetValue(destArg)!), ct).ConfigureAwait(false)
                is { } served)
                return served;
            var found = await FetchService(ctx, ctx.Parse.GetValue(PgData))
                .FetchAsync(ctx.Parse.GetValue(nameArg)!, ctx.Parse.GetValue(destArg)!, ct).ConfigureAwait(false);
            return found ? ExitCode.Ok : ExitCode.NotFound;
        }, (parse, e) => RestoreCommandPolicy.For(e.ExitCode, parse.GetValue(PgData)));

        var afterArg = new Argument<string>("name") { Description = "The segment just restored; the ones after it are fetched" };
        var prefetchWorker = new Command(Background.PrefetchWorkerCommand, "Background worker of wal-fetch --prefetch") { afterArg, SegmentSize, PgData };
        CommandRunner.SetAction(prefetchWorker, async (ctx, ct) =>
        {
            var after = WalFileName.Parse(ctx.Parse.GetValue(afterArg)!);
            var count = ctx.Settings.GetInt(SettingsTable.Prefetch);
            var root = ctx.Settings.Get(SettingsTable.SpoolDir);
            if (after.Kind != WalFileKind.Segment || root is null || count == 0
                || !int.TryParse(ctx.Parse.GetValue(SegmentSize), NumberStyles.None, CultureInfo.InvariantCulture, out var size)
                    || !WalFileName.IsValidSegmentSize(size))
                throw new CloudArchiveException(ExitCode.Usage, "the prefetch worker needs a segment name, a valid --segment-size, --prefetch and --spool-dir");
            var pgdata = ctx.Parse.GetValue(PgData);
            var worker = new PrefetchWorker(after, size, count, Path.GetFullPath(root), pgdata, "");
            await FetchService(ctx, pgdata).RunWorkerAsync(worker, ct).ConfigureAwait(false);
            return ExitCode.Ok;
        });

        var agent = new Command(Background.AgentCommand, "The per-cluster agent of wal-push and wal-fetch --agent");
        CommandRunner.SetAction(agent, async (ctx, ct) =>
        {
            var root = ctx.Settings.Get(SettingsTable.SpoolDir) ?? throw new CloudArchiveException(ExitCode.Usage, "the agent needs --spool-dir");
            Log.Timestamps = true;
            // One store for the agent's life: its connections, credentials and trusted roots are what the agent is for.
            var store = ctx.OpenStore();
            var push = PushService(ctx, () => store);
            var serve = WalAgent.Serve(push, dataDirectory => new WalFetchService(() => store, new Background(ctx), new WalFetchOptions(0, null, dataDirectory, "")));
            await new WalAgent(Path.GetFullPath(root), AgentIdentity(ctx), serve, AgentIdle).RunAsync(ct).ConfigureAwait(false);
            return ExitCode.Ok;
        });

        var list = new Command("wal-list", "List archived WAL per timeline as ranges, with gaps. Example: cloudarchive wal-list --json") { CommonOptions.Json };
        CommandRunner.SetAction(list, async (ctx, ct) =>
        {
            var inventory = await new WalArchive(ctx.OpenStore(), 0).ListAsync(ct).ConfigureAwait(false);
            if (ctx.Parse.GetValue(CommonOptions.Json)) JsonOutput.Write(Console.Out, WalListView.Of(inventory), OutputJson.Default.WalListView);
            else Console.Out.Write(ToText(inventory));
            return ExitCode.Ok;
        });

        Command[] commands = [push, pushWorker, fetch, prefetchWorker, agent, list];
        foreach (var command in commands) Settings.AddOptions(command);
        pushWorker.Hidden = prefetchWorker.Hidden = agent.Hidden = true;
        return commands;
    }

    /// <summary>How long the agent lives without a request.</summary>
    private static readonly TimeSpan AgentIdle = TimeSpan.FromMinutes(5);

    /// <summary>
    /// With --agent, the request handed to the cluster's agent: its exit code, or null when this process does the work
    /// itself (no agent yet, which it then starts; an agent of another configuration; one that went away mid-request).
    /// The agent's failures come back as this process's own, so restore_command's exit policy applies to them alike.
    /// </summary>
    private static async Task<ExitCode?> ViaAgentAsync(CommandContext ctx, (string Spool, AgentRequest Request)? agent, CancellationToken ct)
    {
        if (agent is not { } a) return null;
        var wait = TimeSpan.FromSeconds(ctx.Settings.GetInt(SettingsTable.RetryTimeout)) + TimeSpan.FromMinutes(2);
        var reply = await WalAgent.TryAsync(a.Spool, a.Request, wait, ct).ConfigureAwait(false);
        if (reply is null)
        {
            if (!WalAgent.IsRunning(a.Spool))
                try
                {
                    Directory.CreateDirectory(a.Spool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                    new Background(ctx).Start(new AgentWorker(a.Spool, Path.Combine(a.Spool, "agent.log")));
                }
                catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
                {
                    Log.Warn($"could not start the agent ({e.Message}); working without it");
                }
            return null;
        }
        Log.Debug($"{a.Request.Op} served by the agent");
        return Outcome(a.Request, reply);
    }

    /// <summary>The agent's answer as this process's own outcome: its failures then go through restore_command's exit policy alike.</summary>
    private static ExitCode Outcome(AgentRequest request, AgentReply reply) => reply.Exit switch
    {
        0 => ExitCode.Ok,
        1 when request.Op == "fetch" => ExitCode.NotFound,
        var code => throw new CloudArchiveException((ExitCode)code, reply.Message ?? $"the agent failed (exit {code})"),
    };

    /// <summary>
    /// A drill's restore_command: the drill process, which holds the store's credentials, fetches. A drill that does
    /// not answer is a store that is unavailable, never a file that is not archived.
    /// </summary>
    private static ExitCode ViaDrill(int fd, string token, string name, string destination)
    {
        var dataDir = File.Exists("PG_VERSION") ? Directory.GetCurrentDirectory() : null;
        var request = new AgentRequest("fetch", token, Name: name, Destination: Path.GetFullPath(destination), DataDirectory: dataDir);
        var reply = DrillWalService.Ask(fd, request, DrillWait)
            ?? throw new CloudArchiveException(ExitCode.StoreUnavailable, $"the drill that serves this server's WAL did not answer (descriptor {fd})");
        return Outcome(request, reply);
    }

    /// <summary>The most a drill's restore_command waits: the drill retries its store within its own budget, and stops its server when it ends.</summary>
    private static readonly TimeSpan DrillWait = TimeSpan.FromMinutes(15);

    private static (string, AgentRequest)? AgentPushRequest(CommandContext ctx, string path)
    {
        // Async push and the drop policy keep their own workers and spool: the agent serves the plain push.
        if (!ctx.Settings.GetBool(SettingsTable.Agent) || ctx.Settings.GetBool(SettingsTable.Async) || ctx.Settings.GetBytes(SettingsTable.MaxQueueBytes) > 0)
            return null;
        var full = Path.GetFullPath(path);
        var dataDir = Path.GetDirectoryName(Path.GetDirectoryName(full));
        if (WalAgent.SpoolRoot(ctx.Settings.Get(SettingsTable.SpoolDir), dataDir) is not { } spool) return null;
        return (spool, new AgentRequest("push", AgentIdentity(ctx), Path: full));
    }

    private static (string, AgentRequest)? AgentFetchRequest(CommandContext ctx, string name, string destination)
    {
        // Prefetch keeps its own worker and spool: the agent serves the plain fetch.
        if (!ctx.Settings.GetBool(SettingsTable.Agent) || ctx.Settings.GetInt(SettingsTable.Prefetch) > 0) return null;
        var pgdata = ctx.Parse.GetValue(PgData);
        var dataDir = File.Exists(Path.Combine(pgdata ?? ".", "PG_VERSION")) ? Path.GetFullPath(pgdata ?? ".") : null;
        if (WalAgent.SpoolRoot(ctx.Settings.Get(SettingsTable.SpoolDir), dataDir) is not { } spool) return null;
        return (spool, new AgentRequest("fetch", AgentIdentity(ctx), Name: name, Destination: Path.GetFullPath(destination), DataDirectory: dataDir));
    }

    /// <summary>What must be equal for the agent to do a client's work: the store, its access, the compression, the retry budget.</summary>
    private static string AgentIdentity(CommandContext ctx) => WalAgent.Identity(
        SettingsTable.StoreAccess.Concat([SettingsTable.AzureConnectionString, SettingsTable.AzureAccountKey, SettingsTable.AzureSasToken,
                SettingsTable.CompressLevel, SettingsTable.RetryTimeout])
            .Select(s => $"{s.Variable}={ctx.Settings.Get(s)}"));

    private static WalPushService PushService(CommandContext ctx, Func<Core.Storage.IObjectStore>? openStore = null)
    {
        var options = new WalPushOptions(
            ctx.Settings.GetInt(SettingsTable.CompressLevel),
            ctx.Settings.GetBool(SettingsTable.Async),
            TimeSpan.FromSeconds(ctx.Settings.GetInt(SettingsTable.AsyncWait)),
            ctx.Settings.GetBytes(SettingsTable.MaxQueueBytes),
            ctx.Settings.Get(SettingsTable.SpoolDir),
            ctx.Settings.GetInt(SettingsTable.AsyncJobs, Environment.ProcessorCount));
        // A missing store is a usage error here and now, even when the worker would be the one to open it.
        ctx.Settings.RequireStore();
        ctx.SecondStore();
        return new WalPushService(openStore ?? (() => ctx.OpenStore()), new Background(ctx), options);
    }

    private static WalFetchService FetchService(CommandContext ctx, string? pgdata)
    {
        ctx.Settings.RequireStore();
        var prefetch = ctx.Settings.GetInt(SettingsTable.Prefetch);
        // Without prefetch (the common restore_command) no spool is looked at: nothing to name it by, no /proc walk.
        var options = new WalFetchOptions(prefetch, ctx.Settings.Get(SettingsTable.SpoolDir), pgdata,
            prefetch > 0 ? StoreIdentity.Of(ctx.Settings.Get) : "",
            RunByPgRewind: prefetch > 0 && ProcessAncestry.Includes("pg_rewind"));
        // The history of the cluster in recovery: its pg_control (--pgdata, else the data directory restore_command runs in).
        var cluster = pgdata is null ? null : ControlFile.TryRead(pgdata)?.SystemIdentifier;
        return new WalFetchService(() => ctx.OpenStore(cluster), new Background(ctx), options);
    }

    /// <summary>A segment's own system identifier (its first page's header), which picks its cluster's history; null for other files.</summary>
    private static ulong? SegmentSystemId(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            var start = new byte[WalSegmentHeader.Size];
            return WalSegmentHeader.TryRead(start.AsSpan(0, file.ReadAtLeast(start, start.Length, throwOnEndOfStream: false)))?.SystemIdentifier;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // the push itself reports it
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


    private static string ToText(WalInventory inv)
    {
        if (inv.Timelines.Count == 0) return "no WAL archived\n";
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"system identifier {inv.SystemIdentifier ?? "unknown"}, segment size {Units.Mib(inv.SegmentSize ?? 0)}");
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
}
