using System.Text.Json;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// drill against real archives of a real PostgreSQL 15: it restores, starts a private server, replays, checks and
/// records; a fault in the archive or a failing check fails it with its documented code; nothing is left running or on disk.
/// </summary>
public sealed class DrillTests
{
    /// <summary>A source with a backup and WAL after it, stopped once archived (or left running); the table's hash at the end.</summary>
    /// <param name="plant">What to do to the source before its backup (a fault planted in it).</param>
    internal static async Task<(Source Source, string Hash)> ArchiveAsync(string name, string storeKind, bool stop = true, string? binDir = null,
        Func<Source, Task>? plant = null)
    {
        var s = await StartSourceWithAsync(binDir, [], name, storeKind);
        await s.Cluster.SqlAsync("insert into t select g, 'before ' || g from generate_series(1, 500) g");
        if (plant is not null) await plant(s);
        await BackupAsync(s);
        for (var i = 0; i < 3; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'after ' || g from generate_series({1000 + i * 200}, {1199 + i * 200}) g");
            // The last switch is WaitForArchiveAsync's: one without WAL since the previous names, from 17 on, a segment never completed.
            if (i < 2) await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var hash = await s.Cluster.SqlAsync(TableHash);
        if (stop) await s.Cluster.StopAsync();
        return (s, hash);
    }

    internal static string DrillDir(Source s)
    {
        var dir = Path.Combine(s.Work, "drills");
        TestEnv.CreateDirectory(dir);
        if (TestEnv.IsRoot) Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", dir)).GetAwaiter().GetResult();
        return dir;
    }

    /// <summary>A drill as postgres with a --check that the restored rows are exactly the source's.</summary>
    internal static Task<ProcResult> DrillAsync(Source s, string hash, params string[] more) =>
        CloudArchiveAsPostgres(s, ["drill", "--drill-dir", DrillDir(s), "--json", "--check", $"select ({TableHash}) = '{hash}'", .. more]);

    private static JsonElement Record(ProcResult r) => JsonDocument.Parse(r.Stdout).RootElement;

    /// <summary>Nothing of a drill is left: no directory under the drill dir, no server whose data directory was there.</summary>
    internal static async Task AssertCleanedUpAsync(Source s)
    {
        Assert.Empty(Directory.GetFileSystemEntries(DrillDir(s)));
        var ps = await Proc.RunAsync("pgrep", "-f", "-a", Path.Combine(s.Work, "drills"));
        Assert.True(ps.ExitCode == 1, "a drill's server still runs: " + ps.Stdout);
    }

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task ADrillRestoresReplaysChecksAndRecordsItsResult(string storeKind)
    {
        // The source keeps running: the drill's server must not get in its way (a socket of its own, another port).
        var (s, hash) = await ArchiveAsync("drill-" + storeKind, storeKind, stop: false);
        await using var _ = s.Cluster;

        var r = await DrillAsync(s, hash);

        Assert.True(r.ExitCode == 0, r.ToString());
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        var d = Record(r);
        Assert.True(d.GetProperty("passed").GetBoolean());
        Assert.StartsWith("passed", d.GetProperty("amcheck").GetString());
        Assert.True(d.GetProperty("checks")[0].GetProperty("passed").GetBoolean());
        Assert.True(d.GetProperty("restoreSeconds").GetDouble() > 0 && d.GetProperty("downloadSeconds").GetDouble() > 0);
        Assert.True(d.GetProperty("dataAgeSeconds").GetDouble() is > 0 and < 600, r.Stdout);
        Assert.Matches("^[0-9A-F]+/[0-9A-F]+$", d.GetProperty("reachedLsn").GetString()!);
        Assert.Equal("t", await s.Cluster.SqlAsync("select true"));
        await AssertCleanedUpAsync(s);

        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Contains($"last drill     {d.GetProperty("id").GetString()} passed", status.Stdout);
        var metrics = await OperationsTests.PrometheusSamplesAsync((await CloudArchiveAsPostgres(s, "metrics")).Stdout);
        Assert.Equal(1, metrics[$"cloudarchive_drill_last_success{{store={s.Store.Url}}}"]);
        Assert.True(metrics[$"cloudarchive_drill_last_restore_seconds{{store={s.Store.Url}}}"] > 0);
    }

    [Fact]
    public async Task AFailingCheckACorruptBundleAndAMissingSegmentEachFailTheDrillWithTheirCodeAndLeaveNothingBehind()
    {
        var (s, hash) = await ArchiveAsync("drill-faults", "local");
        var store = new Uri(s.Store.Url).LocalPath;

        // A check that is not true: the server came up, the data is not what was expected.
        var check = await DrillAsync(s, "0:wrong");
        Assert.True(check.ExitCode == 11, check.ToString());
        Assert.Equal("check", Record(check).GetProperty("failedStage").GetString());
        Assert.Contains("check failed", check.Stderr);
        await AssertCleanedUpAsync(s);

        // One flipped byte in a backup bundle: the restore stops at it.
        var bundle = Directory.GetFiles(Path.Combine(store, "backups"), "*.tar.zst", SearchOption.AllDirectories).Order().First();
        var original = await File.ReadAllBytesAsync(bundle);
        var flipped = (byte[])original.Clone();
        flipped[flipped.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(bundle, flipped);
        var corrupt = await DrillAsync(s, hash);
        Assert.True(corrupt.ExitCode == 5, corrupt.ToString());
        Assert.Equal("restore", Record(corrupt).GetProperty("failedStage").GetString());
        await AssertCleanedUpAsync(s);
        await File.WriteAllBytesAsync(bundle, original);

        // A segment in the middle of the range removed (its record stays): replay must stop there, not pass as if the archive ended.
        var segments = Directory.GetFiles(Path.Combine(store, "wal", "00000001"), "????????????????????????.zst").Order().ToList();
        File.Delete(segments[^2]);
        var missing = await DrillAsync(s, hash);
        Assert.True(missing.ExitCode == 5, missing.ToString());
        Assert.Equal("recovery", Record(missing).GetProperty("failedStage").GetString());
        Assert.Contains(Path.GetFileName(segments[^2])[..24], missing.Stderr);
        await AssertCleanedUpAsync(s);

        // Its record removed too: the gap is in the manifest, and the drill names it before restoring anything.
        File.Delete(Path.Combine(store, "manifest", "wal", "00000001", Path.GetFileName(segments[^2])[..24] + ".json"));
        var gap = await DrillAsync(s, hash);
        Assert.True(gap.ExitCode == 8, gap.ToString());
        Assert.Equal("plan", Record(gap).GetProperty("failedStage").GetString());
        Assert.Contains($"the archive has a gap: segment {Path.GetFileName(segments[^2])[..24]} of timeline 1 is missing", gap.Stderr);
        await AssertCleanedUpAsync(s);

        // Every drill left its record; status shows the newest, failed.
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Contains($"last drill     {Record(gap).GetProperty("id").GetString()} FAILED at plan", status.Stdout);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(store, "manifest", "drills")).Length);
    }

    /// <summary>
    /// --drill-dir-limit (an emptyDir's sizeLimit, which statfs does not show: the kubelet evicts the pod past it) caps the room
    /// check, less what the directory already holds: a backup that does not fit fails at once (exit 6, one line saying so and
    /// what it needs), before a byte is downloaded; the same limit with the directory emptied passes.
    /// </summary>
    [Fact]
    public async Task ADrillThatDoesNotFitTheDirectorysLimitFailsBeforeItDownloads()
    {
        var (s, hash) = await ArchiveAsync("drill-limit", "local");
        var dir = DrillDir(s);

        var tight = await DrillAsync(s, hash, "--drill-dir-limit", "1MiB");
        Assert.True(tight.ExitCode == 6, tight.ToString());
        var record = Record(tight);
        Assert.Equal("restore", record.GetProperty("failedStage").GetString());
        Assert.False(record.TryGetProperty("downloadSeconds", out var d) && d.ValueKind == JsonValueKind.Number, tight.Stdout);
        var failure = record.GetProperty("failure").GetString()!;
        Assert.Contains($"{dir} has 1 MiB left of its limit of 1 MiB (--drill-dir-limit; 0 MiB in use); the backup needs ", failure);
        var line = Assert.Single(tight.StderrLines);
        Assert.Contains("drill failed at restore: " + failure, line);
        await AssertCleanedUpAsync(s);

        // What the volume already holds counts: a limit with 64 MiB to spare, 96 MiB already there.
        var need = long.Parse(System.Text.RegularExpressions.Regex.Match(failure, @"the backup needs (\d+) MiB").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var limit = $"{need + 64}MiB";
        var other = Path.Combine(dir, "left-by-someone");
        await File.WriteAllBytesAsync(other, new byte[96 << 20]);
        var full = await DrillAsync(s, hash, "--drill-dir-limit", limit);
        Assert.True(full.ExitCode == 6, full.ToString());
        Assert.Contains($"left of its limit of {need + 64} MiB (--drill-dir-limit; 96 MiB in use)", Record(full).GetProperty("failure").GetString());
        Assert.Equal([other], Directory.GetFileSystemEntries(dir));

        File.Delete(other);
        var fits = await DrillAsync(s, hash, "--drill-dir-limit", limit);
        Assert.True(fits.ExitCode == 0, fits.ToString());
        await AssertCleanedUpAsync(s);
    }

    [Fact]
    public async Task SigtermStopsTheDrillsServerAndRemovesItsDirectory()
    {
        var (s, hash) = await ArchiveAsync("drill-sigterm", "local");
        var drills = DrillDir(s);
        // A check that takes 60 s: the drill is stopped while its server runs.
        var run = DrillAsync(s, hash, "--check", "select pg_sleep(60)::text = ''");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string? pid = null;
        while (pid is null && clock.Elapsed < TimeSpan.FromSeconds(60) && !run.IsCompleted)
        {
            await Task.Delay(100);
            if (Directory.GetFiles(drills, "postmaster.pid", SearchOption.AllDirectories).Length == 0) continue;
            var ps = await Proc.RunAsync("ps", "-C", "cloudarchive", "-o", "pid=,args=");
            pid = ps.Stdout.Split('\n').FirstOrDefault(l => l.Contains($"drill --drill-dir {drills}", StringComparison.Ordinal))?.Trim().Split(' ')[0];
        }
        await Task.Delay(TimeSpan.FromSeconds(3)); // into pg_amcheck or the 60 s check
        if (string.IsNullOrEmpty(pid)) Assert.Fail("the drill's server never ran: " + (run.IsCompleted ? (await run).ToString() : "still running"));

        await Proc.CheckAsync(Proc.RunAsync("kill", "-TERM", pid!));
        var r = await run;

        Assert.True(r.ExitCode == 143, r.ToString());
        Assert.Equal("interrupted", Record(r).GetProperty("failedStage").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(50), "the drill waited for its check instead of stopping");
        await AssertCleanedUpAsync(s);
    }

    /// <summary>A file the backup's code would create if it ran anywhere on this host.</summary>
    private static string Witness(string what) => $"/tmp/cloudarchive-drill-witness-{what}-{Guid.NewGuid():N}";

    /// <summary>SQL that creates <paramref name="witness"/> through the server (COPY TO PROGRAM), only on a server other than <paramref name="source"/>'s.</summary>
    private static string Touch(string witness, PgCluster source) =>
        $"if current_setting('port') <> '{source.Port}' then copy (select 1) to program 'touch {witness}'; end if;";

    /// <summary>
    /// A backup whose configuration loads a library from its own data directory (shared and session preload), includes a
    /// file that does not exist, moves the data directory and sets the time zone (which is kept); whose catalog preloads
    /// that library per database, runs a program from an event trigger and from a SECURITY DEFINER function behind a
    /// view, and, later, has a C function loading from the data directory (forged in pg_proc). The drill runs none of it:
    /// it passes and checks the rows; its server's processes hold no secret of the drill's environment (an S3 store's
    /// keys), nor can the postgres user read the drill's; a check of the view fails without running the program; the C
    /// function, and then a trigger on pg_proc, fail the drill at "catalog" with exit 5.
    /// </summary>
    [Fact]
    public async Task APlantedBackupRunsNothingOfItsOwnAndItsServerHoldsNoSecret()
    {
        var library = "";
        var (ddl, definer) = (Witness("ddl"), Witness("definer"));
        var (s, hash) = await ArchiveAsync("drill-planted", "s3", stop: false, plant: async s =>
        {
            // Not a library at all: loading it would fail the start ("invalid ELF header"), as a malicious one would run.
            library = Path.Combine(s.Cluster.DataDir, "x.so");
            await Proc.CheckAsync(Proc.AsPostgresAsync(["sh", "-c", $"echo not a library > '{library}'"]));
            // After the start: the running source never reads them.
            await s.Cluster.AppendConfAsync([$"shared_preload_libraries = '{library}'", $"session_preload_libraries = '{library}'",
                "include = '/nonexistent/cloudarchive.conf'", "data_directory = '/nonexistent/elsewhere'", "timezone = 'America/New_York'"],
                "postgresql.auto.conf");
            await s.Cluster.SqlAsync("create database app");
            await s.Cluster.SqlAsync($"alter role postgres in database app set session_preload_libraries = '{library}'");
            await s.Cluster.SqlAsync($"create function leak() returns bool language plpgsql security definer as $$ begin {Touch(definer, s.Cluster)} " +
                "return true; end $$; create view leaky as select leak() as ok");
            await s.Cluster.SqlAsync($"create function on_ddl() returns event_trigger language plpgsql as $$ begin {Touch(ddl, s.Cluster)} end $$; " +
                "create event trigger on_ddl on ddl_command_start execute function on_ddl()");
        });
        await using var _ = s.Cluster;
        var drills = DrillDir(s);

        // A check that sleeps keeps the drill's server up while its processes' environments are read.
        // How the data reads comes with the backup: its time zone, for a check of dates.
        var run = DrillAsync(s, hash, "--check", "select pg_sleep(3)::text = ''", "--check", "select current_setting('TimeZone') = 'America/New_York'");
        var environments = new List<string>();
        string? drill = null;
        for (var clock = System.Diagnostics.Stopwatch.StartNew(); environments.Count < 2 && clock.Elapsed < TimeSpan.FromSeconds(60) && !run.IsCompleted;)
        {
            await Task.Delay(100);
            var postmaster = (await Proc.RunAsync("pgrep", "-f", "-o", Path.Combine(drills, "cloudarchive-drill-"))).Stdout.Trim();
            if (postmaster.Length == 0) continue;
            var children = (await Proc.RunAsync("pgrep", "-P", postmaster)).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (children.Length == 0) continue;
            foreach (var pid in children.Prepend(postmaster))
                try { environments.Add(await File.ReadAllTextAsync($"/proc/{pid}/environ")); } catch (IOException) { }
            drill = (await Proc.RunAsync("ps", "-C", "cloudarchive", "-o", "pid=,args=")).Stdout.Split('\n')
                .FirstOrDefault(l => l.Contains($"drill --drill-dir {drills}", StringComparison.Ordinal))?.Trim().Split(' ')[0];
        }
        Assert.True(environments.Count >= 2, "the drill's server was never seen running: " + (run.IsCompleted ? (await run).ToString() : "still running"));
        foreach (var variable in environments.SelectMany(e => e.Split('\0', StringSplitOptions.RemoveEmptyEntries)))
        {
            Assert.False(variable.StartsWith("AWS_", StringComparison.Ordinal) || variable.StartsWith("AZURE_", StringComparison.Ordinal)
                || (variable.StartsWith("CLOUDARCHIVE_", StringComparison.Ordinal) && variable != "CLOUDARCHIVE_CONFIG=")
                || (variable.StartsWith("PG", StringComparison.Ordinal) && variable.Split('=')[0] is not ("PG_GRANDPARENT_PID" or "PGLOCALEDIR" or "PGSYSCONFDIR" or "PGDATA")),
                $"the drill's server has {variable.Split('=')[0]} in its environment");
            Secrets.AssertNoneIn(variable);
        }
        // pg_ctl and postgres set PG_GRANDPARENT_PID, PGDATA, PGLOCALEDIR and PGSYSCONFDIR themselves; the drill has PGHOST and PGPORT, which must not pass.
        // The same user cannot read the drill's own environment (it is not dumpable).
        Assert.NotNull(drill);
        Assert.NotEqual(0, (await Proc.AsPostgresAsync(["cat", $"/proc/{drill}/environ"])).ExitCode);

        var r = await run;
        Assert.True(r.ExitCode == 0, r.ToString());
        var d = Record(r);
        Assert.StartsWith("passed", d.GetProperty("amcheck").GetString());
        Assert.All(d.GetProperty("checks").EnumerateArray(), c => Assert.True(c.GetProperty("passed").GetBoolean()));
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        await AssertCleanedUpAsync(s);

        // The view's SECURITY DEFINER function runs as the check's role, which may not run programs: the check fails.
        var view = await DrillAsync(s, hash, "--check", "select ok from leaky");
        Assert.True(view.ExitCode == 11, view.ToString());
        Assert.Contains("select ok from leaky", Record(view).GetProperty("failure").GetString());
        await AssertCleanedUpAsync(s);
        Assert.False(File.Exists(ddl), "the backup's event trigger ran a program");
        Assert.False(File.Exists(definer), "the backup's SECURITY DEFINER function ran a program");

        // A C function that loads a file of the data directory: refused before anything runs in that database.
        // CREATE FUNCTION loads a C function's library whatever check_function_bodies says: the catalog is forged, as a planted backup's would be.
        await s.Cluster.SqlAsync("create function planted() returns language_handler as '$libdir/plpgsql', 'plpgsql_call_handler' language c");
        await s.Cluster.SqlAsync($"update pg_proc set probin = '{library}' where proname = 'planted'");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var c = await DrillAsync(s, hash);
        Assert.True(c.ExitCode == 5, c.ToString());
        Assert.Equal("catalog", Record(c).GetProperty("failedStage").GetString());
        Assert.Single(c.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("database postgres: function public.planted (language C)"));
        await AssertCleanedUpAsync(s);

        // A trigger on pg_proc (always enabled), which the drill's own catalog changes would fire as the superuser: refused first.
        var onProc = Witness("catalog-trigger");
        await s.Cluster.SqlAsync($"drop function planted(); create function on_proc() returns trigger language plpgsql as $$ begin {Touch(onProc, s.Cluster)} " +
            "return new; end $$");
        await s.Cluster.SqlAsync("set allow_system_table_mods = on; create trigger on_proc before update on pg_proc for each row execute function on_proc(); " +
            "alter table pg_proc enable always trigger on_proc");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var trigger = await DrillAsync(s, hash);
        Assert.True(trigger.ExitCode == 5, trigger.ToString());
        Assert.Equal("catalog", Record(trigger).GetProperty("failedStage").GetString());
        Assert.Contains("database postgres: trigger on_proc on pg_proc", trigger.Stderr);
        Assert.False(File.Exists(onProc), "the backup's trigger on pg_proc ran a program");
        await AssertCleanedUpAsync(s);
    }

    /// <summary>A login event trigger (PostgreSQL 17) of the backup's that runs a program: no connection of the drill fires it.</summary>
    [Fact]
    public async Task ALoginEventTriggerOfTheBackupNeverRunsInADrill()
    {
        var login = Witness("login");
        var bin = PgVersions.BinDir(17);
        var (s, hash) = await ArchiveAsync("drill-login", "local", binDir: bin, plant: s => s.Cluster.SqlAsync(
            $"create function on_login() returns event_trigger language plpgsql as $$ begin {Touch(login, s.Cluster)} end $$; " +
            "create event trigger on_login on login execute function on_login()"));

        var r = await DrillAsync(s, hash, "--drill-pg-bin", bin);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(Record(r).GetProperty("checks")[0].GetProperty("passed").GetBoolean());
        Assert.False(File.Exists(login), "the backup's login trigger ran a program");
        await AssertCleanedUpAsync(s);
    }

    /// <summary>
    /// Whatever code a backup brings into the drill's server (here a superuser session on the drill's own socket, the most
    /// a forged catalog could get) runs confined: it reads no file of the user's (a key file beside the archive), lists
    /// no directory outside the drill's, and connects to no server, neither the production cluster's Unix socket, where
    /// peer authentication would let it in as the superuser, nor any TCP port. The drill itself still passes.
    /// </summary>
    [Fact]
    public async Task CodeInTheDrillsServerReadsNoFileOfTheUsersAndConnectsNowhere()
    {
        var (s, hash) = await ArchiveAsync("drill-sandbox", "local", stop: false);
        await using var _ = s.Cluster;
        var secret = Path.Combine(s.Work, "key-file");
        var word = $"secret-{Guid.NewGuid():N}";
        await File.WriteAllTextAsync(secret, word);
        if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres", secret));
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        // The source cluster's own psql: reaching its socket would be a superuser session on production.
        var psql = "/usr/lib/postgresql/15/bin/psql";
        Assert.True((await Proc.AsPostgresAsync([psql, "-h", s.Cluster.Dir, "-p", s.Cluster.Port.ToString(), "-Atc", "select 1"])).ExitCode == 0);

        var drills = DrillDir(s);
        var run = DrillAsync(s, hash, "--check", "select pg_sleep(6)::text = ''");
        string? pidFile = null;
        for (var clock = System.Diagnostics.Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(90) && !run.IsCompleted; await Task.Delay(100))
        {
            pidFile = Directory.GetDirectories(drills).Select(d => Path.Combine(d, "data", "postmaster.pid")).FirstOrDefault(File.Exists);
            // Ready: the server accepts queries (line 8 of postmaster.pid); the drill's sleeping check keeps it up a while.
            if (pidFile is not null && File.ReadAllLines(pidFile) is { Length: >= 8 } l && l[7].Trim() == "ready") break;
            pidFile = null;
        }
        Assert.True(pidFile is not null, "the drill's server was never seen ready: " + (run.IsCompleted ? (await run).ToString() : "still running"));
        var lines = File.ReadAllLines(pidFile!);
        Task<ProcResult> Inside(string sql) =>
            Proc.AsPostgresAsync([psql, "-X", "-At", "-h", lines[4].Trim(), "-p", lines[3].Trim(), "-U", "postgres", "-d", "postgres", "-c", sql]);

        var read = await Inside($"select pg_read_file('{secret}')");
        Assert.True(read.ExitCode != 0 && read.Stderr.Contains("Permission denied"), read.ToString());
        var program = await Inside($"copy (select 1) to program 'cat {secret} > {secret}.copy'");
        Assert.True(program.ExitCode != 0, program.ToString());
        var list = await Inside($"select pg_ls_dir('{s.Work}')");
        Assert.True(list.ExitCode != 0 && list.Stderr.Contains("Permission denied"), list.ToString());
        var production = await Inside($"copy (select 1) to program '{psql} -h {s.Cluster.Dir} -p {s.Cluster.Port} -c \"create table pwned()\"'");
        Assert.True(production.ExitCode != 0, production.ToString());
        var tcp = await Inside($"copy (select 1) to program '{psql} -h 127.0.0.1 -p {s.Cluster.Port} -c \"create table pwned()\"'");
        Assert.True(tcp.ExitCode != 0, tcp.ToString());
        // Confined for good: no privilege to regain, and the filter on the postmaster.
        var status = await File.ReadAllTextAsync($"/proc/{lines[0].Trim()}/status");
        Assert.Contains("NoNewPrivs:\t1", status);
        Assert.Contains("Seccomp:\t2", status);

        var r = await run;
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("confined (Landlock ABI", r.Stderr);
        Assert.False(File.Exists(secret + ".copy"));
        Assert.Equal("", await s.Cluster.SqlAsync("select relname from pg_class where relname = 'pwned'"));
        Assert.DoesNotContain(word, r.Stdout + r.Stderr);
        await AssertCleanedUpAsync(s);

        // Where the kernel has no Landlock the operator chooses: --no-sandbox runs it unconfined, and says so.
        var open = await DrillAsync(s, hash, "--no-sandbox");
        Assert.True(open.ExitCode == 0, open.ToString());
        Assert.Contains("NOT confined (--no-sandbox)", open.Stderr);
        await AssertCleanedUpAsync(s);
    }
}

/// <summary>A drill on a host with the default config file (/etc/cloudarchive, the package's place), which tests beside it must not see.</summary>
[Collection(EtcCloudArchive.Name)]
public sealed class DrillWithTheDefaultConfigFileTests
{
    /// <summary>
    /// The drill reads /etc/cloudarchive/cloudarchive.env like every command, but its confined server's restore_command does
    /// not: the sandbox may not read it, and a fetch that tried failed every drill's recovery with exit 200 on such a host.
    /// </summary>
    [Fact]
    public async Task ADrillPassesWhereTheDefaultConfigFileExists()
    {
        var (s, hash) = await DrillTests.ArchiveAsync("drill-default-config", "local");
        await EtcCloudArchive.WithDefaultConfigFileAsync(async () =>
        {
            var r = await DrillTests.DrillAsync(s, hash);

            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("confined (Landlock ABI", r.Stderr);
            await DrillTests.AssertCleanedUpAsync(s);
        });
    }
}
