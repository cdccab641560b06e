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
        TestEnv.CreateDirectory(onlyPsql);
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

    private const string Items = "select count(*) || ':' || md5(string_agg(id || '=' || name, ',' order by id)) from items";

    /// <summary>A database "shop" with rows; returns their fingerprint.</summary>
    private static async Task<string> CreateShopAsync(BackupRestoreTests.Source s)
    {
        await s.Cluster.SqlAsync("create database shop");
        await s.Cluster.SqlAsync("create table items (id int primary key, name text); insert into items select g, 'item ' || g from generate_series(1, 1000) g", "shop");
        return await s.Cluster.SqlAsync(Items, "shop");
    }

    private static async Task<string> DumpAsync(BackupRestoreTests.Source s, string database)
    {
        var r = await RunAsync(s, ["dump-push", "--dbname", database]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout.Split(' ', ':')[1];
    }

    [Fact]
    public async Task OnPostgreSql13DebiansClientProgramsDumpAndBackUpRemotely()
    {
        var s = await StartAsync(13, "pg13-clients", archive: true);
        await using var _ = s.Cluster;
        var expected = await CreateShopAsync(s);

        // pg_dump 15 dumps 13; the record keeps both versions, and pg_restore 15 restores it.
        var id = await DumpAsync(s, "shop");
        var record = System.Text.Json.JsonDocument.Parse((await RunAsync(s, ["dump-list", "--json"])).Stdout).RootElement[0];
        Assert.Equal(13, record.GetProperty("serverVersionNum").GetInt32() / 10000);
        Assert.StartsWith("15.", record.GetProperty("pgDumpVersion").GetString());
        var restored = await RunAsync(s, ["dump-restore", id, "--dbname", "shop_copy", "--create", "--log", Path.Combine(s.Work, "restore.log")]);
        Assert.True(restored.ExitCode == 0, restored.ToString());
        Assert.Equal(expected, await s.Cluster.SqlAsync(Items, "shop_copy"));

        // pg_basebackup 15 backs up 13 over the replication protocol; restored and started with 13's binaries.
        await s.Cluster.SqlAsync("create table t (id int primary key, note text); insert into t select g, 'before' from generate_series(1, 100) g");
        var remote = await RunAsync(s, ["backup-push", "--remote"]);
        Assert.True(remote.ExitCode == 0, remote.ToString());
        await s.Cluster.SqlAsync("insert into t select g, 'after the backup' from generate_series(101, 200) g");
        await BackupRestoreTests.AssertLatestRestoresAsync(s);
    }

    [Fact]
    public async Task ADumpOfANewerPgDumpNeedsAPgRestoreAsNewAndNothingIsRestoredWithout()
    {
        var s = await StartAsync(15, "pg15-restore", archive: false);
        await using var _ = s.Cluster;
        var expected = await CreateShopAsync(s);
        var real = await DumpAsync(s, "shop");
        var newer = await DumpAsync(s, "shop");

        // The record of a dump that pg_dump 17 wrote (as it would be with postgresql-client-17 on the dumping host).
        var store = new LocalStore(new Uri(s.Store.Url).LocalPath, create: false);
        var recordPath = Path.Combine(store.Dir, "manifest", "dumps", newer + ".json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(LocalStore.Read(recordPath).ContentText)!;
        json["pgDumpVersion"] = "17.2";
        File.Delete(recordPath);
        store.Plant($"manifest/dumps/{newer}.json", System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), []);

        var refused = await RunAsync(s, ["dump-restore", newer, "--dbname", "never", "--create", "--log", Path.Combine(s.Work, "refused.log")]);

        var line = Expect.OneLineError(refused, 9);
        Assert.Matches(@"pg_restore 15\.\d+ \(.*, the newest found\) cannot read a dump written by pg_dump 17\.2: install postgresql-client-17 or set --pg-bin to its bin directory$", line);
        Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_database where datname = 'never'"));
        Assert.False(File.Exists(Path.Combine(s.Work, "refused.log")), "the restore log was written before the refusal");
        var ok = await RunAsync(s, ["dump-restore", real, "--dbname", "copy", "--create", "--log", Path.Combine(s.Work, "ok.log")]);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal(expected, await s.Cluster.SqlAsync(Items, "copy"));
    }
}
