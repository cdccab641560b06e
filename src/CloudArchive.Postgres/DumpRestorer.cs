using System.Diagnostics;
using System.Formats.Tar;
using CloudArchive.Core;
using CloudArchive.Core.Dump;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Postgres;

/// <summary>Where and how dump-restore restores.</summary>
/// <param name="DbName">The target: libpq's --dbname (a name, conninfo or URI); for globals, any database of the target server.</param>
/// <param name="Create">Create the target database first (CREATE DATABASE ... TEMPLATE template0).</param>
/// <param name="Clean">Drop the dump's objects before recreating them (pg_restore --clean --if-exists).</param>
/// <param name="Jobs">pg_restore -j; above 1 the verified dump is spooled to a private temp directory first.</param>
public sealed record DumpRestoreOptions(string? DbName, bool Create, bool Clean, int Jobs, string LogPath, string? PgBin)
{
    /// <summary>The log is a new file (the default one in $TMPDIR): created exclusively, so a file or link planted there is never written through.</summary>
    public bool NewLog { get; init; }

    /// <summary>
    /// Shows each pass over the dump's decoded bytes, out of its recorded size: the verification, then the bytes fed to
    /// pg_restore or psql (a parallel restore's pg_restore reads its spooled copy itself, unseen).
    /// </summary>
    public StartProgress? Progress { get; init; }
}

/// <summary>What dump-restore did, for its one line of output.</summary>
/// <param name="Target">The database restored into (for globals, the server).</param>
/// <param name="Program">The program that restored it: pg_restore, or psql for a plain or globals dump.</param>
/// <param name="Verify">The first pass, proving the stored dump intact.</param>
/// <param name="Restore">The second pass, into the target.</param>
/// <param name="LogPath">The file that holds the program's messages.</param>
public sealed record DumpRestoreResult(DumpRecord Dump, string Target, string Program, TimeSpan Verify, TimeSpan Restore, string LogPath);

/// <summary>
/// dump-restore. Nothing reaches the target before the whole dump is proven intact: a first pass reads and
/// hashes it (keeping nothing, or spooling it for a parallel restore); only then is the target created and
/// the dump streamed again, hashed again, into pg_restore (custom, directory) or psql (plain, globals).
/// A single-job restore runs in one transaction, so a failure leaves the target as it was.
/// </summary>
public sealed class DumpRestorer(IObjectStore store, DumpRestoreOptions options)
{
    /// <summary>Verifies <paramref name="dump"/> in full, then restores it into the target.</summary>
    public async Task<DumpRestoreResult> RestoreAsync(DumpRecord dump, CancellationToken ct)
    {
        var globals = dump.Kind == DumpKind.Globals;
        if (globals && (options.Create || options.Clean || options.Jobs > 1))
            throw new CloudArchiveException(ExitCode.Usage,
                "a globals dump is restored with psql into a whole server: --create, --clean and --jobs do not apply");
        if (dump.StreamFormat == "plain" && options.Clean)
            throw new CloudArchiveException(ExitCode.Usage,
                "a plain dump is an SQL script without DROP statements: --clean needs a custom or directory dump; " +
                "restore a plain dump into a new database (--create)");
        if (dump.StreamFormat == "plain" && options.Jobs > 1)
            throw new CloudArchiveException(ExitCode.Usage, "a plain dump is one SQL script run by one psql session: --jobs needs a custom or directory dump");
        var target = LibpqSettings.DatabaseName(options.DbName);
        if (!globals && target is null)
            throw new CloudArchiveException(ExitCode.Usage, "name the database to restore into: --dbname TARGET");
        LibpqSettings.RegisterSecrets(options.DbName);
        var connection = LibpqSettings.ForChild(options.DbName);
        var program = dump.StreamFormat == "plain" ? "psql" : "pg_restore";
        var client = await PgProgram.FindAsync(NeedFor(program, dump), options.PgBin, ct).ConfigureAwait(false);
        var exe = client.Path;
        var script = program == "psql";
        if (script) RequireRestrictedMode(client);
        var what = $"dump {dump.Id}";

        await using var log = OpenLog(options.LogPath, options.NewLog);
        log.WriteLine($"cloudarchive dump-restore {dump.Id} ({(globals ? "globals" : "database " + dump.Database)}, {dump.Format}, " +
            $"taken {dump.StartTime:u} from PostgreSQL {dump.ServerVersion}) " +
            $"into {(globals ? "the server" : "database " + target)}, {DateTimeOffset.UtcNow:u}");
        var catalog = new DumpCatalog(store);
        var clock = Stopwatch.StartNew();
        DirectoryInfo? spool = null;
        try
        {
            string? spooled = null;
            try
            {
                // With two copies of the archive (--fallback-store), a pass that finds the first store's dump corrupt runs again on the second's.
                spooled = await FallbackObjectStore.ReadCheckedAsync(store, dump.Key, async () =>
                {
                    using var pass = options.Progress?.Invoke("verify dump", dump.Size);
                    if (!script)
                    {
                        // The same pass reads the archive's SQL, as pg_restore renders it, for what a plain dump is refused for.
                        await using var sql = PgRestoreScriptCheck.Start(exe, dump.StreamFormat, dump.Id, log);
                        string? into = null;
                        if (options.Jobs > 1)
                        {
                            spool?.Delete(recursive: true);
                            spool = Directory.CreateTempSubdirectory("cloudarchive-restore-"); // 0700
                            into = await SpoolAsync(catalog, dump, spool.FullName, sql, pass, ct).ConfigureAwait(false);
                        }
                        else
                        {
                            await using (var input = sql.Feed())
                                await catalog.CopyVerifiedAsync(dump, input, ct, pass).ConfigureAwait(false);
                        }
                        await sql.CompleteAsync(ct).ConfigureAwait(false);
                        return into;
                    }
                    // The script is read through psql's eyes before anything runs: a meta-command is refused here, with its line.
                    await using var check = PsqlScript.Check(what, target);
                    await using (var input = globals ? GlobalsScript.Filter(check) : null)
                        await catalog.CopyVerifiedAsync(dump, input ?? check, ct, pass).ConfigureAwait(false);
                    return null;
                }).ConfigureAwait(false);
            }
            catch (CorruptObjectException e)
            {
                throw new CorruptObjectException(e.Message + "; nothing was restored", e);
            }
            var verified = clock.Elapsed;
            log.WriteLine($"verified: {dump.Size} bytes, SHA-256 {dump.Sha256} as recorded ({verified.TotalSeconds:0.0} s)");
            Log.Info($"dump {dump.Id} verified in {verified.TotalSeconds:0.0} s");

            if (options.Create) await CreateDatabaseAsync(target!, connection, log, ct).ConfigureAwait(false);

            var args = new List<string> { "--no-password" };
            if (program == "psql")
            {
                args.AddRange(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "--pset", "pager=off", "-f", "-"]);
            }
            else
            {
                args.AddRange(["--verbose", "--exit-on-error"]);
                if (options.Clean) args.AddRange(["--clean", "--if-exists"]);
                if (spooled is null) args.AddRange(["--single-transaction", "--format=" + (dump.StreamFormat == "tar" ? "t" : "c")]);
                else args.AddRange(["--jobs=" + options.Jobs, "--format=" + (dump.StreamFormat == "tar" ? "d" : "c"), spooled]);
            }
            args.AddRange(connection.Arguments);
            log.WriteLine(Log.Redact($"running: {exe} {string.Join(' ', args)}"));
            log.Flush();

            var env = connection.Environment();
            env["PGOPTIONS"] = $"{Environment.GetEnvironmentVariable("PGOPTIONS")} --client-min-messages=warning".Trim();
            var started = clock.Elapsed;
            // Shown until the program exits: after the last byte it may still be building indexes.
            using var feed = spooled is null ? options.Progress?.Invoke(program + " input", dump.Size) : null;
            using var child = PgProgram.Start(exe, args, writeStdin: spooled is null, env, log);
            var stdout = DrainAsync(child.StandardOutput, log);
            Exception? feedError = null;
            if (spooled is null)
            {
                try
                {
                    // psql gets the script behind a \restrict whose key only this process knows: its own lock on meta-commands.
                    await using (var guard = script ? PsqlScript.Filter(child.StandardInput, what, PsqlScript.NewKey(), target) : null)
                    await using (var input = globals ? GlobalsScript.Filter(guard!) : null)
                        await catalog.CopyVerifiedAsync(dump, input ?? guard ?? child.StandardInput, ct, feed).ConfigureAwait(false);
                    await child.StandardInput.DisposeAsync().ConfigureAwait(false);
                }
                catch (CorruptObjectException e)
                {
                    // Read differently the second time. psql commits only at the end of its input, which it
                    // never gets; pg_restore may have finished with the last bytes before the check could fail.
                    child.Kill();
                    throw new CorruptObjectException(e.Message + (program == "psql"
                        ? " on a second read; psql was stopped and its transaction rolled back"
                        : $" on a second read; pg_restore was stopped, but may have restored it already: check {target ?? "the server"}"), e);
                }
                catch (IOException e)
                {
                    // The program stopped reading (it failed, or a tar ended before its padding), or the store
                    // read failed. An exited program explains itself; one still waiting for input is stopped.
                    feedError = e;
                    using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    try { await child.WaitAsync(grace.Token).ConfigureAwait(false); }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested) { /* killed by WaitAsync */ }
                }
            }
            await child.WaitAsync(ct).ConfigureAwait(false);
            await stdout.ConfigureAwait(false);
            var suffix = $" (log: {options.LogPath})";
            var oneTransaction = spooled is null;
            if (child.KilledByUs)
                throw new CloudArchiveException(ExitCode.StoreUnavailable,
                    $"reading dump {dump.Id} from {store.Description} failed: {feedError?.Message}; {program} was stopped, nothing was restored{suffix}");
            if (child.ExitStatus != 0)
            {
                log.WriteLine($"FAILED: {program} exited {child.ExitStatus}" + (oneTransaction ? "; it ran in one transaction, so nothing was restored" : ""));
                var hint = !options.Clean && child.Reason().Contains("already exists", StringComparison.Ordinal)
                    ? program == "psql"
                        ? "; the target already has this dump's objects: restore into a new database (--create), or use a custom or directory dump with --clean"
                        : "; the target already has this dump's objects: add --clean to replace them, or restore into a new database (--create)"
                    : "";
                throw child.Failure((oneTransaction ? "; nothing was restored" : "") + hint + suffix);
            }
            if (feedError is not null) log.WriteLine($"note: {program} finished before reading the dump's last bytes ({feedError.Message})");
            var restoreTime = clock.Elapsed - started;
            log.WriteLine($"done: restored in {restoreTime.TotalSeconds:0.0} s");
            return new DumpRestoreResult(dump, globals ? "the server" : target!, program, verified, restoreTime, options.LogPath);
        }
        catch (CloudArchiveException e)
        {
            log.WriteLine("error: " + e.Message);
            throw;
        }
        finally
        {
            if (spool is not null) spool.Delete(recursive: true);
        }
    }

    /// <summary>
    /// The verification pass of a parallel restore, which needs random access: a custom dump is written to
    /// a file, a directory dump (stored as pg_dump's tar) extracted into the directory format it came from; <paramref name="sql"/>
    /// reads the same bytes.
    /// </summary>
    private static async Task<string> SpoolAsync(DumpCatalog catalog, DumpRecord dump, string dir, PgRestoreScriptCheck sql, IProgress<long>? progress,
        CancellationToken ct)
    {
        if (dump.StreamFormat == "custom")
        {
            var file = Path.Combine(dir, "dump.custom");
            await using (var output = new FileStream(file, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 1 << 16, Options = FileOptions.Asynchronous,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            await using (var feed = sql.Feed(output))
                await catalog.CopyVerifiedAsync(dump, feed, ct, progress).ConfigureAwait(false);
            return file;
        }
        var target = Path.Combine(dir, "dump.dir");
        Directory.CreateDirectory(target);
        var pipe = new System.IO.Pipelines.Pipe(new System.IO.Pipelines.PipeOptions(pauseWriterThreshold: 4 << 20, resumeWriterThreshold: 2 << 20));
        var producer = Task.Run(async () =>
        {
            try
            {
                await using (var feed = sql.Feed(pipe.Writer.AsStream()))
                    await catalog.CopyVerifiedAsync(dump, feed, ct, progress).ConfigureAwait(false);
                await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e).ConfigureAwait(false);
                throw;
            }
        }, ct);
        try
        {
            await TarFile.ExtractToDirectoryAsync(pipe.Reader.AsStream(), target, overwriteFiles: false, ct).ConfigureAwait(false);
            // Past the tar's end marker: read to the end, so the SHA-256 covers every byte.
            await pipe.Reader.AsStream().CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
        }
        catch (Exception)
        {
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            await producer.ConfigureAwait(false); // a corrupt dump is the reason an extraction fails
            throw;
        }
        await producer.ConfigureAwait(false);
        return target;
    }

    /// <summary>
    /// pg_restore reads archives only of its own pg_dump version or older (a newer archive format is refused
    /// half-way); psql runs any pg_dump's script, as far as its own meta-commands go (<see cref="RequireRestrictedMode"/>).
    /// </summary>
    private static ClientNeed NeedFor(string program, DumpRecord dump) =>
        program == "pg_restore" && PostgresVersion.ProgramMajor(dump.PgDumpVersion) is { } major
            ? new ClientNeed(program, major, $"read a dump written by pg_dump {dump.PgDumpVersion.Split(' ')[0]}")
            : ClientNeed.Any(program);

    /// <summary>
    /// A plain script from the store is run only by a psql that can lock out meta-commands itself (\restrict): the
    /// minor releases of August 2025 on. An older psql is refused before anything is read.
    /// </summary>
    private static void RequireRestrictedMode(ClientProgram psql)
    {
        if (!PsqlScript.SupportsRestrict(psql.Version))
            throw new CloudArchiveException(ExitCode.PostgresFailed,
                $"{psql.Path} is version {psql.Version}, which cannot lock out psql meta-commands " +
                "(\\restrict: 13.22, 14.19, 15.14, 16.10, 17.6, 18 and later); " +
                "install a current minor release of the PostgreSQL client programs to restore a plain or globals dump, " +
                "or set CLOUDARCHIVE_PG_BIN to one");
    }

    private async Task CreateDatabaseAsync(string target, ChildConnection connection, StreamWriter log, CancellationToken ct)
    {
        var psql = (await PgProgram.FindAsync(ClientNeed.Any("psql"), options.PgBin, ct).ConfigureAwait(false)).Path;
        var sql = $"CREATE DATABASE \"{target.Replace("\"", "\"\"", StringComparison.Ordinal)}\" TEMPLATE template0";
        log.WriteLine(sql);
        var postgres = connection.WithDatabase("postgres");
        await PgProgram.RunAsync(psql, ["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-c", sql, .. postgres.Arguments], ct,
            postgres.Environment(), log).ConfigureAwait(false);
    }

    private static async Task DrainAsync(Stream output, StreamWriter log)
    {
        using var reader = new StreamReader(output);
        while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
            lock (log) log.WriteLine(Log.Redact(line));
    }

    private static StreamWriter OpenLog(string path, bool exclusive)
    {
        try
        {
            // Error context lines can quote rows: owner only.
            return new StreamWriter(new FileStream(path, new FileStreamOptions
            {
                Mode = exclusive ? FileMode.CreateNew : FileMode.Append,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            })) { AutoFlush = true };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot write the restore log {path}: {e.Message}", e);
        }
    }
}
