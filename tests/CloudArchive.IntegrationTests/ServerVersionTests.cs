namespace CloudArchive.IntegrationTests;

/// <summary>
/// What CloudArchive refuses to do for a server version, each refusal one line with exit 9 before anything is written
/// to the store: a server older than 13 (a real PostgreSQL 12), and a client program older than the server it must
/// work with (Debian's pg_dump, pg_dumpall and pg_basebackup 15 against a real PostgreSQL 17).
/// </summary>
public sealed class ServerVersionTests
{
    private static async Task<ProcResult> RunAsync(BackupRestoreTests.Source s, string[] args, Dictionary<string, string?>? env = null)
    {
        var vars = new Dictionary<string, string?> { ["PGHOST"] = s.Cluster.Dir, ["PGPORT"] = s.Cluster.Port.ToString() };
        if (env is not null) foreach (var (k, v) in env) vars[k] = v;
        var r = await Proc.AsPostgresAsync([TestEnv.Binary, .. args, "--config", s.Store.ConfigFile], vars, null, TimeSpan.FromMinutes(2));
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        return r;
    }

    private static async Task<BackupRestoreTests.Source> StartAsync(int major, string name, bool archive)
    {
        var work = TestEnv.NewWorkDir(name);
        var store = TestStore.Create("local", work);
        var cluster = await PgCluster.InitWithAsync(PgVersions.BinDir(major), Path.Combine(work, "pg"), [],
            archive ? ["archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args}'"] : []);
        await cluster.StartAsync();
        var s = new BackupRestoreTests.Source(work, store, cluster);
        // A store that exists (its marker) but holds nothing: listing it shows what a refusal left.
        Assert.Equal(0, (await RunAsync(s, ["store-init"])).ExitCode);
        return s;
    }

    private static List<string> StoreFiles(BackupRestoreTests.Source s) => new LocalStore(new Uri(s.Store.Url).LocalPath, create: false).VisibleFiles();

    [Fact]
    public async Task APostgreSql12ServerIsRefusedWithTheSupportedRangeAndNothingIsWritten()
    {
        var s = await StartAsync(12, "pg12", archive: false);
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create table t (id int); insert into t values (1)");

        foreach (var args in new[] { new[] { "backup-push" }, ["backup-push", "--remote"], ["dump-push", "--dbname", "postgres"], ["dump-push", "--globals"] })
        {
            var r = await RunAsync(s, args);
            var line = Expect.OneLineError(r, 9);
            Assert.Matches(@"^cloudarchive: error: PostgreSQL 12\.\d+ is not supported: CloudArchive supports 13 to 18$", line);
        }
        Assert.Empty(StoreFiles(s));
        Assert.Equal("no backups", (await RunAsync(s, ["backup-list"])).Stdout.Trim());
        Assert.Equal("no dumps", (await RunAsync(s, ["dump-list"])).Stdout.Trim());
    }

    [Fact]
    public async Task DumpsOfAPostgreSql17ServerNeedAPgDumpOf17AndNothingIsWrittenWithout()
    {
        // Only Debian's client programs (15) are installed: the npm server build has no pg_dump.
        var s = await StartAsync(17, "pg17-dump", archive: false);
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database shop");
        await s.Cluster.SqlAsync("create table items (id int primary key); insert into items select generate_series(1, 100)", "shop");

        var dump = Expect.OneLineError(await RunAsync(s, ["dump-push", "--dbname", "shop"]), 9);
        Assert.Matches(@"pg_dump 15\.\d+ \(.*, the newest found\) cannot dump PostgreSQL 17\.\d+: install postgresql-client-17 or set --pg-bin to its bin directory$", dump);
        var globals = Expect.OneLineError(await RunAsync(s, ["dump-push", "--globals"]), 9);
        Assert.Matches(@"pg_dumpall 15\.\d+ \(.*\) cannot dump PostgreSQL 17\.\d+: install postgresql-client-17", globals);

        // A configured directory is the operator's choice: too old, or without pg_dump, it is named.
        var old = Expect.OneLineError(await RunAsync(s, ["dump-push", "--dbname", "shop", "--pg-bin", "/usr/lib/postgresql/15/bin"]), 9);
        Assert.Matches(@"pg_dump 15\.\d+ in /usr/lib/postgresql/15/bin \(--pg-bin / CLOUDARCHIVE_PG_BIN\) cannot dump PostgreSQL 17\.\d+: set --pg-bin to the bin directory of PostgreSQL 17 or later", old);
        var onlyPsql = Path.Combine(s.Work, "bin");
        Directory.CreateDirectory(onlyPsql);
        File.CreateSymbolicLink(Path.Combine(onlyPsql, "psql"), "/usr/lib/postgresql/15/bin/psql");
        var none = Expect.OneLineError(await RunAsync(s, ["dump-push", "--dbname", "shop"], new() { ["CLOUDARCHIVE_PG_BIN"] = onlyPsql }), 9);
        Assert.Matches($@"pg_dump not found in {onlyPsql} \(--pg-bin / CLOUDARCHIVE_PG_BIN\) to dump PostgreSQL 17\.\d+: set --pg-bin to the bin directory of PostgreSQL 17 or later \(postgresql-client-17\)$", none);

        Assert.Empty(StoreFiles(s));
        Assert.Equal("no dumps", (await RunAsync(s, ["dump-list"])).Stdout.Trim());
    }

    [Fact]
    public async Task ARemoteBackupOfAPostgreSql17ServerNeedsAPgBasebackupOf17()
    {
        var s = await StartAsync(17, "pg17-remote", archive: true);
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create table t (id int primary key, note text); insert into t select g, 'x' from generate_series(1, 100) g");

        var r = await RunAsync(s, ["backup-push", "--remote"]);

        var line = Expect.OneLineError(r, 9);
        Assert.Matches(@"pg_basebackup 15\.\d+ \(.*\) cannot back up PostgreSQL 17\.\d+: install postgresql-client-17 or set --pg-bin to its bin directory$", line);
        Assert.DoesNotContain(StoreFiles(s), f => f.StartsWith("backups/", StringComparison.Ordinal) || f.StartsWith("manifest/backups/", StringComparison.Ordinal));
        Assert.Equal("no backups", (await RunAsync(s, ["backup-list"])).Stdout.Trim());

        // The local backup-push needs no client program: the same server is backed up and restored.
        await BackupRestoreTests.BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'after the backup' from generate_series(101, 200) g");
        await BackupRestoreTests.AssertLatestRestoresAsync(s);
    }
}
