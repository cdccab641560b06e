using CloudArchive.Core.Operations;
using CloudArchive.Core.Storage;

namespace CloudArchive.Cli;

/// <summary>status, verify and expire: running the archive for years.</summary>
internal static class OperationsCommands
{
    private static readonly Option<string> BackupId = new("--backup") { Description = "Verify only this backup (an id, or latest)" };
    private static readonly Option<bool> Wal = new("--wal") { Description = "Also download and check every archived WAL file" };
    private static readonly Option<bool> Dumps = new("--dumps") { Description = "Also download and check every SQL dump" };
    private static readonly Option<string> MetricsPgData = new("--pgdata")
    {
        Description = "Data directory on this host: add its .ready backlog and whether its workers run",
    };
    private static readonly Option<bool> ExitCodeOnProblem = new("--exit-code") { Description = "Exit 11 when status reports a problem (for a monitor)" };
    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "Print what would be removed; remove nothing" };
    private static readonly Option<string> CheckPgData = new("--pgdata")
    {
        Description = "Data directory of the running primary: connect through the socket its postmaster.pid names (else --dbname, PGHOST ...)",
    };
    private static readonly Option<int?> CheckTimeout = new("--timeout") { Description = "Seconds the switched WAL segment may take to reach the store (default 60)" };

    public static IEnumerable<Command> Build()
    {
        var check = new Command("check",
            "Prove archiving works end to end on the running primary: archive_mode and archive_command, the store refuses overwrites, a WAL " +
                "switch reaches this store, and it fetches and verifies as restore_command would (with the key). Example: cloudarchive check --pgdata " +
                "/var/lib/postgresql/15/main") { BackupCommands.DbName, CheckPgData, CheckTimeout };
        CommandRunner.SetAction(check, async (ctx, ct) =>
        {
            var seconds = ctx.Parse.GetValue(CheckTimeout) ?? 60;
            if (seconds is < 1 or > 86400) throw new CloudArchiveException(ExitCode.Usage, "--timeout must be 1 to 86400 seconds");
            var dbname = ctx.Parse.GetValue(BackupCommands.DbName)
                ?? (ctx.Parse.GetValue(CheckPgData) is { } pgdata ? Postgres.PgConnectionInfo.ForDataDirectory(pgdata) : null);
            await using var db = Postgres.PgConnectionInfo.Open(dbname);
            var options = new Postgres.ArchiveCheckOptions(ctx.Settings.RequireStore(), ctx.Settings.Get(SettingsTable.EncryptionKeyFile) is not null,
                TimeSpan.FromSeconds(seconds), Path.GetTempPath(), Settings.StoreInConfigFile);
            var findings = await new Postgres.ArchiveCheck(ctx.OpenStore(), db, options).RunAsync(ct).ConfigureAwait(false);
            foreach (var f in findings) Console.Out.WriteLine($"{(f.Passed ? "ok    " : "FAILED")}  {f.What,-24}  {f.Detail}");
            var failed = findings.Where(f => !f.Passed).Select(f => f.What).ToList();
            if (failed.Count == 0)
            {
                Console.Out.WriteLine("check: archiving into this store works, and what it archives restores");
                return ExitCode.Ok;
            }
            Log.Error($"check failed: {string.Join(", ", failed)}");
            return ExitCode.CheckFailed;
        });

        var status = new Command("status", "The archive at a glance: backups, WAL ranges and gaps, last archived segment, PITR window. " +
            "Example: cloudarchive status --exit-code")
            { CommonOptions.Json, ExitCodeOnProblem };
        Settings.AddOptions(status);
        CommandRunner.SetAction(status, async (ctx, ct) =>
        {
            var r = await new ArchiveStatus(ctx.OpenStore()) { Retention = RetentionPolicy(ctx.Settings), Second = ctx.SecondStoreProbe(null) }
                .ReadAsync(ct).ConfigureAwait(false);
            if (ctx.Parse.GetValue(CommonOptions.Json)) JsonOutput.Write(Console.Out, StatusView.Of(r, DateTimeOffset.UtcNow), OutputJson.Default.StatusView);
            else Console.Out.Write(StatusText(r));
            // For a monitor (Nagios-style): a problem is a non-zero exit, not only a line to read.
            if (!ctx.Parse.GetValue(ExitCodeOnProblem) || r.Problems.Count == 0) return ExitCode.Ok;
            Log.Error($"status found {r.Problems.Count} problems (--exit-code)");
            return ExitCode.CheckFailed;
        });

        var verify = new Command("verify",
            "Download and check every backup file (and with --wal every WAL file) against the manifest. " +
                "Example: cloudarchive verify --backup latest --wal") { BackupId, Wal, Dumps, CommonOptions.Json };
        Settings.AddOptions(verify);
        CommandRunner.SetAction(verify, async (ctx, ct) =>
        {
            var tty = !Console.IsErrorRedirected;
            var started = DateTime.UtcNow;
            Action<long, long>? progress = tty
                ? (objects, bytes) => Console.Error.Write(F($"\rverified {objects} objects, {bytes / 1048576.0:0.0} MiB, ") +
                    F($"{(DateTime.UtcNow - started).TotalSeconds:0} s   "))
                : null;
            var jobs = ctx.Settings.GetInt(SettingsTable.Jobs, Environment.ProcessorCount);
            // With a second store (--store-2), each store is checked and reported on its own.
            var stores = new List<IObjectStore> { ctx.OpenStore() };
            if (ctx.OpenSecondStore() is { } second) stores.Add(second.Store);
            var worst = ExitCode.Ok;
            var reports = await ArchiveVerifier.VerifyEachAsync(stores, jobs, progress, ctx.Parse.GetValue(BackupId), ctx.Parse.GetValue(Wal),
                ctx.Parse.GetValue(Dumps), ct).ConfigureAwait(false);
            if (tty) Console.Error.WriteLine();
            var json = ctx.Parse.GetValue(CommonOptions.Json);
            if (json) JsonOutput.Write(Console.Out, VerifyView.Of(reports.Select(x => x.Report).ToList()), OutputJson.Default.VerifyView);
            foreach (var (store, r) in reports)
            {
                var of = stores.Count > 1 ? $" in {store}" : "";
                if (!json) VerifyText(r, stores.Count > 1 ? store : null);
                if (r.Problems.Count == 0) continue;
                Log.Error($"verify found {r.Problems.Count} missing or corrupt objects or gaps{of}");
                worst = ExitCode.Corrupt;
            }
            return worst;
        });

        static void VerifyText(VerifyReport r, string? store)
        {
            var of = store is null ? "" : $" in {store}";
            foreach (var p in r.Problems) Console.Out.WriteLine(store is null ? $"PROBLEM {p}" : $"PROBLEM in {store}: {p}");
            if (r.Keys.Count > 0)
                Console.Out.WriteLine("encryption: " + string.Join(", ", r.Keys.Select(k =>
                    k.Key == "none" ? $"not encrypted ({k.Value} objects)" : $"key {k.Key} ({k.Value} objects)")));
            Console.Out.WriteLine($"locks: {r.Locks}");
            Console.Out.WriteLine(F($"verified {r.Objects} objects{of} ({r.Bytes / 1048576.0:0.0} MiB of content): ") +
                F($"{(r.Problems.Count == 0 ? "all good" : $"{r.Problems.Count} problems")}"));
        }

        var expire = new Command("expire",
            "Remove backups the retention policy does not keep and the WAL no kept backup needs (the retention settings, or their flags). " +
                "Example: cloudarchive expire --retain-full 2 --dry-run") { DryRun };
        Settings.AddOptions(expire);
        CommandRunner.SetAction(expire, async (ctx, ct) =>
        {
            var (full, days, dumps) = Retention(ctx.Settings);
            var dry = ctx.Parse.GetValue(DryRun);
            // With a second store (--store-2), each store by its own retention: its config file's, else the same.
            var stores = new List<(IObjectStore Store, ExpirePolicy Policy)> { (ctx.OpenStore(), new ExpirePolicy(full, days, dry, dumps)) };
            if (ctx.OpenSecondStore() is { } second)
            {
                var source = second.Settings.ConfigFile ?? "the settings";
                int? Own(Setting s, int? same) => second.Settings.ConfigFile is null ? same : s.ParseWhole(second.Settings.Get(s), source) ?? same;
                stores.Add((second.Store, new ExpirePolicy(Own(SettingsTable.RetainFull, full), Own(SettingsTable.RetainDays, days), dry,
                    Own(SettingsTable.RetainDumps, dumps))));
            }
            var refused = 0;
            foreach (var (store, policy, r) in await ArchiveExpirer.ExpireEachAsync(stores, ct).ConfigureAwait(false))
            {
                var of = stores.Count > 1 ? $" in {store}" : "";
                if (stores.Count > 1)
                    Console.Out.WriteLine($"{store}: retention{(policy.RetainFull is { } f ? $" --retain-full {f}" : "")}" +
                        $"{(policy.RetainDays is { } rd ? $" --retain-days {rd}" : "")}{(policy.RetainDumps is { } dn ? $" --retain-dumps {dn}" : "")}");
                if (policy.RetainDays is { } d)
                    Console.Out.WriteLine($"--retain-days {d}: backups that ended before {DateTimeOffset.UtcNow.AddDays(-d):u} by this host's clock are past it");
                foreach (var id in r.RetainedBackups) Console.Out.WriteLine($"keep backup {id}{of}");
                foreach (var why in r.Leased) Console.Out.WriteLine($"kept for a restore in progress: backup {why}");
                foreach (var why in r.Misfits) Console.Out.WriteLine($"PROBLEM {why}");
                foreach (var key in r.Removed) Console.Out.WriteLine($"{(dry ? "would remove" : "removed")} {key}{of}");
                foreach (var key in r.Abandoned) Console.Out.WriteLine($"{(dry ? "would remove" : "removed")} abandoned {key}{of}");
                foreach (var why in r.Refused) Console.Out.WriteLine($"REFUSED {why}");
                foreach (var l in r.Locked) Console.Out.WriteLine($"locked {l.Key}{(l.Until is { } u ? $" until {u.UtcDateTime:u}" : "")}{of}");
                if (r.LockedSummary is { } locked) Console.Out.WriteLine($"expire {locked}{of}");
                Console.Out.WriteLine($"{(dry ? "dry run: would remove" : "removed")} {r.Removed.Count} objects{of}; kept {r.RetainedBackups.Count} " +
                    $"backups{(r.Refused.Count > 0 ? $"; {r.Refused.Count} deletions refused by the store" : "")}");
                refused += r.Refused.Count;
            }
            if (refused == 0) return ExitCode.Ok;
            Log.Error($"{refused} objects could not be removed (object lock or permissions); everything else was");
            return ExitCode.StoreUnavailable;
        });
        var metrics = new Command("metrics",
            "The archive's state in the Prometheus text format, for a node_exporter textfile collector; with --pgdata also the host's archiving backlog. " +
                "Example: cloudarchive metrics --pgdata /var/lib/postgresql/15/main")
            { MetricsPgData };
        Settings.AddOptions(metrics);
        CommandRunner.SetAction(metrics, async (ctx, ct) =>
        {
            var store = ctx.OpenStore();
            var pgdata = ctx.Parse.GetValue(MetricsPgData);
            var host = pgdata is null ? null : HostState.Read(pgdata, ctx.Settings.Get(SettingsTable.SpoolDir));
            StatusReport? status = null;
            CloudArchiveException? failure = null;
            try
            {
                status = await new ArchiveStatus(store) { Retention = RetentionPolicy(ctx.Settings), Second = ctx.SecondStoreProbe(pgdata) }
                    .ReadAsync(ct).ConfigureAwait(false);
            }
            catch (CloudArchiveException e)
            {
                // The collector still gets cloudarchive_up 0 (and the host's figures): an alert, not a stale file.
                failure = e;
            }
            Console.Out.Write(ArchiveMetrics.Format(store.Description, status, host, DateTimeOffset.UtcNow));
            if (failure is null) return ExitCode.Ok;
            Log.Error(failure.Message);
            return failure.ExitCode;
        });
        return [check, status, verify, expire, metrics];
    }

    /// <summary>The retention settings (flags on expire; variables or the config file everywhere, so status can hold the store to them).</summary>
    private static (int? Full, int? Days, int? Dumps) Retention(Settings settings) =>
        (settings.GetOptionalInt(SettingsTable.RetainFull), settings.GetOptionalInt(SettingsTable.RetainDays), settings.GetOptionalInt(SettingsTable.RetainDumps));

    private static ExpirePolicy? RetentionPolicy(Settings settings) =>
        Retention(settings) is var (full, days, dumps) && (full ?? days ?? dumps) is not null ? new ExpirePolicy(full, days, false, dumps) : null;

    private static string StatusText(StatusReport r)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"store          {r.Store}");
        w.WriteLine(r.Window is { } win
            ? F($"PITR window    {win.Earliest:yyyy-MM-dd HH:mm:ss}Z (end of backup {win.EarliestBackup}) .. about {win.Latest:yyyy-MM-dd HH:mm:ss}Z ") +
                F($"(segment {win.LatestSegment}, timeline {win.LatestTimeline})")
            : "PITR window    none: no restorable backup");
        w.WriteLine(r.LastArchived is null ? "last WAL       none archived" : F($"last WAL       {r.LastArchived}, archived ") +
            F($"{r.LastArchivedAt:yyyy-MM-dd HH:mm:ss}Z ({Units.Since(r.LastArchivedAt!.Value)} ago)") + By(r.LastPushedBy));
        if (r.LastPerTimeline.Count > 1)
            foreach (var (timeline, segment, at, by) in r.LastPerTimeline)
                w.WriteLine(F($"  timeline {timeline}: last {segment}, archived {at:yyyy-MM-dd HH:mm:ss}Z ({Units.Since(at)} ago)") + By(by));
        foreach (var e in r.Streamed)
            w.WriteLine($"streamed       timeline {e.Segment.Timeline}: up to LSN {e.Reach} in {e.Segment.Name} (wal-receive)" +
                (e.StoredAt is { } at ? F($", stored {at:yyyy-MM-dd HH:mm:ss}Z ({Units.Since(at)} ago)") : ""));
        w.WriteLine($"backups        {r.Backups.Count}");
        foreach (var b in r.Backups.AsEnumerable().Reverse())
            w.WriteLine(F($"  {b.Id}  {BackupCommands.Kind(b)}  ended {b.StopTime:yyyy-MM-dd HH:mm:ss}Z  took {(b.StopTime - b.StartTime).TotalSeconds:0.0} s  timeline ") +
                F($"{b.Timeline}  LSN {b.StartLsn} - {b.StopLsn}  {b.Size / 1048576.0:0.0} MiB ({b.StoredSize / 1048576.0:0.0} MiB ") +
                F($"stored){(r.Unrestorable.ContainsKey(b.Id) ? "  UNRESTORABLE" : "")}"));
        w.WriteLine($"dumps          {r.Dumps.Count}");
        foreach (var d in r.Dumps)
            w.WriteLine(F($"  {d.Id}  {d.Database ?? "(globals)"}  {d.Format}  ended {d.EndTime:yyyy-MM-dd HH:mm:ss}Z  took ") +
                F($"{(d.EndTime - d.StartTime).TotalSeconds:0.0} s  {d.Size / 1048576.0:0.0} MiB ({d.StoredSize / 1048576.0:0.0} MiB stored)"));
        w.WriteLine(F($"WAL            {r.WalStoredBytes / 1048576.0:0.0} MiB stored"));
        foreach (var t in r.Wal.Timelines)
        {
            w.WriteLine($"  timeline {t.Timeline}: {t.Segments} segments");
            foreach (var g in t.Ranges) w.WriteLine($"    {g.First} - {g.Last}  ({g.Segments})  {g.StartLsn} - {g.EndLsn}");
            foreach (var g in t.Gaps) w.WriteLine($"    GAP {g.First} - {g.Last}  ({g.Segments} missing)");
        }
        w.WriteLine(r.LastDrill is { } drill
            ? F($"last drill     {drill.Id} {(drill.Passed ? "passed" : $"FAILED at {drill.FailedStage} (exit {drill.ExitCode})")}, ended ") +
                F($"{drill.EndTime:yyyy-MM-dd HH:mm:ss}Z ({Units.Since(drill.EndTime)} ago)") + (drill.RestoreSeconds is { } rs ? F($", restore time {rs:0.0} s") : "") +
                F($", total {drill.TotalSeconds:0.0} s")
            : "last drill     none recorded (see cloudarchive drill)");
        if (r.Keys.Count > 0)
            w.WriteLine("encryption     " + string.Join(", ", r.Keys.Select(k =>
                k.Key == "none" ? $"not encrypted ({k.Value} records)" : $"key {k.Key} ({k.Value} records)")));
        w.WriteLine($"locks          {r.Locks}");
        if (r.SecondStore is { } two)
            w.WriteLine($"second store   {two.Store} ({two.Mode}): " + (two.Failure is not null ? $"CANNOT BE LISTED: {two.Failure}"
                : two.Complete ? "lacks nothing"
                : F($"LACKS {two.LackingObjects} objects ({two.LackingBytes / 1048576.0:0.0} MiB): {two.LackingSegments} WAL files, ") +
                    $"backups [{string.Join(", ", two.LackingBackups)}], dumps [{string.Join(", ", two.LackingDumps)}]") +
                (two.BacklogObjects is { } n ? n == 0 ? "; backlog empty" : F($"; backlog {n} objects, oldest {two.BacklogOldest:yyyy-MM-dd HH:mm:ss}Z ({Units.Since(two.BacklogOldest!.Value)} ago)") : ""));
        foreach (var p in r.Problems) w.WriteLine($"PROBLEM {p}");
        return w.ToString();
    }

    /// <summary>", pushed by HOST" from a record (a name from the store: printed through the filter of record text).</summary>
    private static string By(string? host) => host is null ? "" : $", pushed by {Core.Backup.RestoreLayout.Printable(host)}";

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
