using System.Runtime.InteropServices;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Native;
using CloudArchive.Postgres;

namespace CloudArchive.Cli;

/// <summary>drill: restore a backup into a private directory, start it, check it, record the outcome, remove it.</summary>
internal static class DrillCommands
{
    private static readonly Option<string[]> Check = new("--check")
    {
        Description = "SQL that must return true on the restored server (repeatable), e.g. \"select count(*) > 0 from orders\"",
    };
    private static readonly Option<string> CheckDatabase = new("--check-database") { Description = "The database --check queries run in (default postgres)" };
    private static readonly Option<int?> Timeout = new("--timeout") { Description = "Seconds the restore and recovery may take before the drill fails" };
    private static readonly Option<bool> NoSandbox = new("--no-sandbox")
    {
        Description = "Run the drill's server unconfined (a kernel without Landlock): the backup's code could then read what this user can read",
    };

    public static IEnumerable<Command> Build()
    {
        var drill = new Command("drill",
            "Prove the archive restores: restore a backup into a private directory, start PostgreSQL on it, replay to the target, run " +
                "pg_amcheck and --check queries, record the result in the store, remove everything. Example: cloudarchive drill --check-database app " +
                "--check \"select count(*) > 0 from orders\"")
            { BackupCommands.BackupId, Check, CheckDatabase, Timeout, CommonOptions.Json, NoSandbox };
        Settings.AddOptions(drill);
        BackupCommands.AddTargetOptions(drill);
        CommandRunner.SetAction(drill, async (ctx, ct) =>
        {
            if (ctx.Parse.GetValue(Timeout) is < 1)
                throw new CloudArchiveException(ExitCode.Usage, "--timeout must be a positive number of seconds");
            var confine = !ctx.Parse.GetValue(NoSandbox);
            if (confine && Sandbox.LandlockAbi() == 0)
                throw new CloudArchiveException(ExitCode.Usage, "this kernel offers no Landlock (Linux 5.13 or later with landlock in its LSM list, and " +
                    "a seccomp profile that allows it), so the drill cannot keep the backup's code from this user's files: run it on such a kernel, " +
                    "or pass --no-sandbox to accept that (see docs on the threat model)");
            // The restored server runs as this user: it must not read this process's environment (the store's credentials) or memory.
            Posix.SetNotDumpable();
            // SIGTERM (a CronJob's deadline, kill) and Ctrl-C stop the drill, which then stops its server and removes its directory.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var exitCode = 130;
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; exitCode = 143; stop.Cancel(); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            var options = new DrillOptions(
                BackupCommands.ReadTarget(ctx), ctx.Parse.GetValue(BackupCommands.BackupId), ctx.Parse.GetValue(Check) ?? [],
                ctx.Parse.GetValue(CheckDatabase) ?? "postgres", ctx.Settings.Get(SettingsTable.DrillPgBin),
                ctx.Settings.Get(SettingsTable.DrillDir) ?? Path.GetTempPath(), ctx.Settings.GetInt(SettingsTable.Jobs, Environment.ProcessorCount),
                ctx.Parse.GetValue(Timeout) is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
                (fd, token) => RestoreCommand.Build([Environment.ProcessPath ?? "cloudarchive", "wal-fetch", "%f", "%p",
                    WalCommands.DrillFd.Name, fd.ToString(CultureInfo.InvariantCulture), WalCommands.DrillToken.Name, token]))
            {
                InterruptedExitCode = () => exitCode,
                DirLimit = ctx.Settings.GetBytes(SettingsTable.DrillDirLimit),
                Sandbox = confine ? Environment.ProcessPath ?? throw new CloudArchiveException(ExitCode.Internal, "this program's path is unknown") : null,
            };
            var record = await new RestoreDrill(ctx.OpenStore(), options, m => Log.Notice("drill: " + m), (label, total) => TtyProgress.Start(label, total))
                .RunAsync(stop.Token).ConfigureAwait(false);
            if (ctx.Parse.GetValue(CommonOptions.Json))
                JsonOutput.Write(Console.Out, record, ManifestJson.Default.DrillRecord);
            else
                Console.Out.Write(Text(record));
            if (!record.Passed) Log.Error($"drill failed at {record.FailedStage}: {record.Failure}");
            return (ExitCode)record.ExitCode;
        });
        return [drill];
    }

    /// <summary>The drill's outcome for a person: what was restored, each time, the point reached, each check.</summary>
    internal static string Text(DrillRecord r)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine(r.Passed ? $"drill {r.Id}: PASSED" : $"drill {r.Id}: FAILED at {r.FailedStage} (exit {r.ExitCode}): {r.Failure}");
        w.WriteLine($"backup        {r.BackupId ?? "-"}{(r.ServerVersion is { } v ? $" (PostgreSQL {v})" : "")}, target {r.Target}");
        if (r.DownloadSeconds is { } d) w.WriteLine(F($"download      {d:0.0} s"));
        if (r.ReplaySeconds is { } p) w.WriteLine(F($"replay        {p:0.0} s"));
        if (r.RestoreSeconds is { } t) w.WriteLine(F($"restore time  {t:0.0} s (from the first byte downloaded to a server that accepts queries)"));
        if (r.ReachedLsn is { } lsn)
            w.WriteLine(F($"reached       LSN {lsn}") + (r.ReachedTime is { } at
                ? F($", last transaction {at:yyyy-MM-dd HH:mm:ss}Z, data {Units.Age(r.DataAgeSeconds ?? 0)} old")
                : ", no transaction replayed after the backup"));
        if (r.Amcheck is { } a) w.WriteLine($"pg_amcheck    {a}");
        foreach (var c in r.Checks) w.WriteLine($"check         {(c.Passed ? "passed" : "FAILED")}: {c.Sql}{(c.Detail is { } x ? $" ({x})" : "")}");
        w.WriteLine(F($"total         {r.TotalSeconds:0.0} s; server stopped, directory removed; recorded as {StoreLayout.DrillRecordKey(r.Id)}"));
        return w.ToString();
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
