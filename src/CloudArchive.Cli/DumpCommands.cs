using CloudArchive.Core.Dump;
using CloudArchive.Core.Manifest;
using CloudArchive.Postgres;

namespace CloudArchive.Cli;

/// <summary>dump-push, dump-list, dump-fetch and dump-restore: logical dumps with pg_dump, streamed.</summary>
internal static class DumpCommands
{
    private static readonly Option<string> DbName = new("--dbname") { Description = "Database name, conninfo string or URI, as pg_dump takes it; PGHOST, " +
        "PGPORT, PGUSER, PGPASSWORD, PGPASSFILE... fill the rest" };
    private static readonly Option<string> Format = new Option<string>("--format") { Description = "custom (default), plain or directory (streamed as pg_dump's tar format)" }.AcceptOnlyFromAmong("custom", "plain", "directory");
    private static readonly Option<bool> Globals = new("--globals") { Description = "Roles and tablespaces of the whole server (pg_dumpall --globals-only)" };
    private static readonly Option<string> ListDbName = new("--dbname") { Description = "Only the dumps of this database" };
    private static readonly Option<string> OfDbName = new("--dbname") { Description = "With latest: the latest dump of this database" };
    private static readonly Option<string> Output = new("--output") { Description = "File to write (must not exist), or - for stdout", Required = true };
    private static readonly Option<string> Target = new("--dbname") { Description = "Database to restore into: a name, conninfo string or URI (libpq); for " +
        "globals, any database of the target server" };
    private static readonly Option<string> Source = new("--source") { Description = "With latest: restore the latest dump of this database (default: the " +
        "--dbname target's name)" };
    private static readonly Option<bool> Create = new("--create") { Description = "Create the target database first (from template0); fails if it exists" };
    private static readonly Option<bool> Clean = new("--clean") { Description = "Drop the dump's objects in the target before recreating them (custom and " +
        "directory dumps)" };
    private static readonly Option<string> RestoreLog = new("--log") { Description = "Restore log file, appended to (default: " +
        "TMPDIR/cloudarchive-dump-restore-ID-TIME.log)" };

    public static IEnumerable<Command> Build()
    {
        var push = new Command("dump-push",
            "Dump a database with pg_dump (or the server's roles with --globals), streamed into the store. " +
                "Example: cloudarchive dump-push --dbname shop") { DbName, Format, Globals };
        Settings.AddOptions(push);
        CommandRunner.SetAction(push, async (ctx, ct) =>
        {
            var globals = ctx.Parse.GetValue(Globals);
            var format = ctx.Parse.GetValue(Format);
            if (globals && format is not null) throw new CloudArchiveException(ExitCode.Usage, "--globals dumps are SQL scripts (pg_dumpall): --format " +
                "does not apply");
            format ??= DumpFormat.Custom;
            DumpFormat.ForPgDump(format);
            var jobs = ctx.Settings.GetInt(SettingsTable.Jobs, 1);
            var level = ctx.Settings.GetInt(SettingsTable.CompressLevel);
            var options = new DumpPushOptions(ctx.Parse.GetValue(DbName), format, globals, level, jobs, PgBinDir(ctx)) { Progress = TtyProgress.Start };
            var d = await new DumpPusher(ctx.OpenStore(), options).PushAsync(ct).ConfigureAwait(false);
            Console.Out.WriteLine(F($"dump {d.Id}: {What(d)}, {Units.Size(d.Size)} stored as {Units.Size(d.StoredSize)} in {(d.EndTime - d.StartTime).TotalSeconds:0.0} ") +
                F($"s; SHA-256 {d.Sha256}"));
            return ExitCode.Ok;
        });

        var list = new Command("dump-list", "List the SQL dumps in the store, newest first. Example: cloudarchive dump-list --dbname shop") { CommonOptions.Json, ListDbName };
        Settings.AddOptions(list);
        CommandRunner.SetAction(list, async (ctx, ct) =>
        {
            var db = ctx.Parse.GetValue(ListDbName);
            var dumps = (await new DumpCatalog(ctx.OpenStore()).ListAsync(ct).ConfigureAwait(false))
                .Where(d => db is null || d.Kind == DumpKind.Database && d.Database == db).Reverse().ToList();
            if (ctx.Parse.GetValue(CommonOptions.Json)) JsonOutput.Write(Console.Out, dumps, ManifestJson.Default.ListDumpRecord);
            else if (dumps.Count == 0) Console.Out.WriteLine(db is null ? "no dumps" : $"no dumps of database {db}");
            else
                foreach (var d in dumps)
                    Console.Out.WriteLine(F($"{d.Id}  {d.StartTime:yyyy-MM-dd HH:mm:ss}Z  {What(d),-30}  {Units.Size(d.Size)} ({Units.Size(d.StoredSize)} stored)  ") +
                        F($"PostgreSQL {d.ServerVersionNum / 10000}.{d.ServerVersionNum % 10000}"));
            return ExitCode.Ok;
        });

        var fetchId = new Argument<string>("id") { Description = "Dump id, or latest" };
        var fetch = new Command("dump-fetch", "Write a dump as pg_dump produced it (verified) to a file or stdout. " +
            "Example: cloudarchive dump-fetch latest --dbname shop --output shop.dump") { fetchId, Output, OfDbName, Globals };
        CommandRunner.SetAction(fetch, async (ctx, ct) =>
        {
            var catalog = new DumpCatalog(ctx.OpenStore());
            var d = await catalog.ResolveAsync(ctx.Parse.GetValue(fetchId)!,
                ctx.Parse.GetValue(OfDbName), ctx.Parse.GetValue(Globals), ct).ConfigureAwait(false);
            var output = ctx.Parse.GetValue(Output)!;
            if (output == "-")
            {
                // Verified before the first byte goes out: a reader of stdout cannot take bytes back.
                await catalog.VerifyAsync(d, ct).ConfigureAwait(false);
                await using var stdout = Console.OpenStandardOutput();
                await catalog.CopyVerifiedAsync(d, stdout, ct).ConfigureAwait(false);
                Log.Info(F($"wrote dump {d.Id} ({Units.Size(d.Size)}) to stdout"));
            }
            else
            {
                await catalog.FetchToFileAsync(d, output, ct).ConfigureAwait(false);
                Console.Error.WriteLine(F($"cloudarchive: wrote dump {d.Id} ({What(d)}, {Units.Size(d.Size)}) to {output}, SHA-256 ") +
                    F($"verified{(d.StreamFormat == "tar" ? "; a tar: pg_restore reads it, tar -xf gives the directory format" : "")}"));
            }
            return ExitCode.Ok;
        });

        var restoreId = new Argument<string>("id") { Description = "Dump id, or latest" };
        var restore = new Command("dump-restore",
            "Verify a dump, then restore it with pg_restore (custom, directory) or psql (plain, globals). Example: " +
                "cloudarchive dump-restore latest --source shop --dbname shop_copy --create")
            { restoreId, Target, Source, Globals, Create, Clean, RestoreLog };
        Settings.AddOptions(restore);
        CommandRunner.SetAction(restore, async (ctx, ct) =>
        {
            var store = ctx.OpenStore();
            var target = ctx.Parse.GetValue(Target);
            var jobs = ctx.Settings.GetInt(SettingsTable.Jobs, 1);
            var d = await new DumpCatalog(store).ResolveAsync(ctx.Parse.GetValue(restoreId)!,
                ctx.Parse.GetValue(Source) ?? LibpqSettings.DatabaseName(target), ctx.Parse.GetValue(Globals), ct).ConfigureAwait(false);
            // The default log is in a shared directory: a name nobody can guess, created exclusively (DumpRestorer).
            var given = ctx.Parse.GetValue(RestoreLog);
            var log = given ?? Path.Combine(Path.GetTempPath(),
                F($"cloudarchive-dump-restore-{d.Id}-{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-{Guid.NewGuid().ToString("N")[..8]}.log"));
            var options = new DumpRestoreOptions(target, ctx.Parse.GetValue(Create), ctx.Parse.GetValue(Clean), jobs, log, PgBinDir(ctx))
                { NewLog = given is null, Progress = TtyProgress.Start };
            var r = await new DumpRestorer(store, options).RestoreAsync(d, ct).ConfigureAwait(false);
            Console.Out.WriteLine(F($"restored dump {d.Id} ({What(d)}) into {r.Target} with {r.Program}: verified in {r.Verify.TotalSeconds:0.0} s, ") +
                F($"restored in {r.Restore.TotalSeconds:0.0} s; log {r.LogPath}"));
            return ExitCode.Ok;
        });
        return [push, list, fetch, restore];
    }

    private static string? PgBinDir(CommandContext ctx) => ctx.Settings.Get(SettingsTable.PgBin);

    private static string What(DumpRecord d) => d.Kind == DumpKind.Globals ? "globals" : $"database {d.Database} ({d.Format})";
    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
