using System.Diagnostics;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// Base backups of a running cluster and restores to every kind of target. Each test ends with the
/// restored server started and its rows compared with the source at the target.
/// </summary>
public sealed class BackupRestoreTests
{
    internal const string TableHash = "select count(*) || ':' || md5(coalesce(string_agg(id || '=' || note, ',' order by id), '')) from t";
    internal const string AccountsHash = "select count(*) || ':' || md5(string_agg(aid || '=' || abalance, ',' order by aid)) from pgbench_accounts";

    internal sealed record Source(string Work, TestStore Store, PgCluster Cluster);

    internal static Task<Source> StartSourceAsync(string name, string storeKind = "local", params string[] extraConf) =>
        StartSourceWithAsync(null, [], name, storeKind, extraConf);

    /// <summary>A started cluster archiving to a new store, made by the server binaries in <paramref name="binDir"/> (null: Debian's 15).</summary>
    internal static async Task<Source> StartSourceWithAsync(string? binDir, string[] initdbArgs, string name, string storeKind, params string[] extraConf)
    {
        var work = TestEnv.NewWorkDir(name);
        return await StartSourceOnAsync(binDir, initdbArgs, work, TestStore.Create(storeKind, work), extraConf);
    }

    /// <summary>A started cluster archiving to <paramref name="store"/>, made in <paramref name="work"/> (its config file already as wanted).</summary>
    internal static async Task<Source> StartSourceOnAsync(string? binDir, string[] initdbArgs, string work, TestStore store, params string[] extraConf)
    {
        var cluster = await PgCluster.InitWithAsync(binDir, Path.Combine(work, "source"), initdbArgs,
            ["archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args}'", .. extraConf]);
        await cluster.StartAsync();
        await cluster.SqlAsync("create table t (id int primary key, note text)");
        return new Source(work, store, cluster);
    }

    internal static Task<ProcResult> CloudArchiveAsPostgres(Source s, params string[] args) =>
        Proc.AsPostgresAsync([TestEnv.Binary, .. args, "--config", s.Store.ConfigFile],
            new Dictionary<string, string?> { ["PGHOST"] = s.Cluster.Dir, ["PGPORT"] = s.Cluster.Port.ToString() }, null, TimeSpan.FromMinutes(10));

    internal static async Task<string> BackupAsync(Source s)
    {
        var r = await CloudArchiveAsPostgres(s, "backup-push");
        Assert.True(r.ExitCode == 0, r.ToString());
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        var id = r.Stdout.Split(' ', ':')[1];
        Assert.StartsWith("20", id);
        return id;
    }

    /// <summary>
    /// Restores into a new directory as the cluster owner and starts it with the source's server binaries; archiving is
    /// off unless asked. <paramref name="prefetch"/> &gt; 0: restore_command is wal-fetch --prefetch N (info lines in the server log);
    /// <paramref name="extraConf"/> lines go to postgresql.conf after the port and socket.
    /// </summary>
    internal static async Task<PgCluster> RestoreAndStartAsync(Source s, string dirName, string[] restoreArgs, bool archive = false, int prefetch = 0,
        params string[] extraConf)
    {
        var dir = TestEnv.SharedDir(s.Work, dirName);
        var r = await CloudArchiveAsPostgres(s, ["restore", "--to", Path.Combine(dir, "data"), "--target-action", "promote", .. restoreArgs]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("every checksum verified", r.Stdout);
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        var restored = await PgCluster.AdoptWithAsync(s.Cluster.BinDir, dir, archive ? extraConf : ["archive_mode = off", .. extraConf]);
        if (prefetch > 0)
            await restored.AppendConfAsync([$"restore_command = '{TestEnv.Binary} wal-fetch %f %p {s.Store.Args} --prefetch {prefetch} --log-level info'"], "postgresql.auto.conf");
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        return restored;
    }

    /// <summary>Stops the source once its WAL is archived, restores to the end of the archive and compares table t.</summary>
    internal static async Task AssertLatestRestoresAsync(Source s)
    {
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    /// <summary>
    /// Reads the rows a restore to a time must have (table t, pgbench's accounts), takes that time between two pauses,
    /// then writes what it must not have (rows of t noted 'unwanted', more pgbench), and stops the source once archived.
    /// </summary>
    internal static async Task<(string Target, string Table, string Accounts)> MarkTargetTimeAndMoveOnAsync(Source s)
    {
        var table = await s.Cluster.SqlAsync(TableHash);
        var accounts = await s.Cluster.SqlAsync(AccountsHash);
        await Task.Delay(1100);
        var target = await s.Cluster.SqlAsync("select now()::text");
        await Task.Delay(1100);
        await s.Cluster.SqlAsync("insert into t select g, 'unwanted ' || g from generate_series(1000001, 1000400) g");
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "200", "-c", "2", "postgres"));
        Assert.NotEqual(accounts, await s.Cluster.SqlAsync(AccountsHash));
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        return (target, table, accounts);
    }

    /// <summary>
    /// A copy restored with --archive-mode off archives nothing: its new timeline never reaches the store of the cluster it came
    /// from (which "latest" would follow). The default, preserve, says where the restored server will archive.
    /// </summary>
    [Fact]
    public async Task ACopyRestoredWithArchiveModeOffArchivesNothingIntoTheStore()
    {
        var s = await StartSourceAsync("archive-off", "local");
        await using var _ = s.Cluster;
        await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t values (1, 'one')");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var storeDir = new Uri(s.Store.Url).LocalPath;

        var preserve = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(TestEnv.SharedDir(s.Work, "replace"), "data"));
        Assert.True(preserve.ExitCode == 0, preserve.ToString());
        Assert.Contains("archiving: the backup's own (--archive-mode preserve): archive_mode = on, archive_command = ", preserve.Stdout);
        Expect.OneLineError(await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(s.Work, "x"), "--archive-mode", "sometimes"), 2);

        var dir = TestEnv.SharedDir(s.Work, "copy");
        var r = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"), "--target-action", "promote", "--archive-mode", "off");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("archiving: off (--archive-mode off)", r.Stdout);
        // Started with the backup's own archive settings (archive_mode = on, archive_command to this store), as a copy would be.
        await using var copy = await PgCluster.AdoptWithAsync(s.Cluster.BinDir, dir, []);
        await copy.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(copy);
        Assert.Equal("off", await copy.SqlAsync("show archive_mode"));
        await copy.SqlAsync("insert into t values (2, 'copy')");
        await copy.SqlAsync("select pg_switch_wal()");
        await Task.Delay(2000);
        Assert.False(Directory.Exists(Path.Combine(storeDir, "wal", "00000002")), "the copy archived its timeline into the store");
        Assert.Equal("1:one,2:copy", await copy.SqlAsync("select string_agg(id || ':' || note, ',' order by id) from t"));
    }

    /// <summary>
    /// A target time without a zone is read as PostgreSQL reads it, in the cluster's timezone (New York here), not in the
    /// restoring shell's (Tokyo): the backup chosen ended before that moment, and the restored cluster holds the row
    /// committed before it and not the one committed after it.
    /// </summary>
    [Fact]
    public async Task ATargetTimeWithoutAZoneIsReadInTheClustersTimezoneNotTheRestoringHosts()
    {
        var s = await StartSourceAsync("target-zone", "local", "timezone = 'America/New_York'");
        await using var _ = s.Cluster;
        var first = await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t values (1, 'wanted')");
        await Task.Delay(1100);
        var target = await s.Cluster.SqlAsync("select to_char(now(), 'YYYY-MM-DD HH24:MI:SS.US')");
        await Task.Delay(1100);
        await s.Cluster.SqlAsync("insert into t values (2, 'the mistake')");
        var second = await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t values (3, 'later')");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var tokyo = new Dictionary<string, string?> { ["TZ"] = "Asia/Tokyo" };

        var plan = await Proc.AsPostgresAsync([TestEnv.Binary, "plan", "--target-time", target, "--config", s.Store.ConfigFile], tokyo);
        Assert.True(plan.ExitCode == 0, plan.ToString());
        Assert.Contains($"backup       {first}", plan.Stdout);
        Assert.Contains("read in America/New_York (the cluster's timezone", plan.Stdout);
        Assert.DoesNotContain(second, plan.Stdout);

        var dir = TestEnv.SharedDir(s.Work, "restored");
        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "restore", "--to", Path.Combine(dir, "data"), "--target-time", target, "--target-action",
            "promote", "--config", s.Store.ConfigFile], tokyo);
        Assert.True(r.ExitCode == 0, r.ToString());
        await using var restored = await PgCluster.AdoptWithAsync(s.Cluster.BinDir, dir, ["archive_mode = off"]);
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        Assert.Equal("1:wanted", await restored.SqlAsync("select string_agg(id || ':' || note, ',' order by id) from t"));
    }

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task BackupTakenUnderLoadRestoresToAPointInTime(string storeKind)
    {
        var s = await StartSourceAsync("backup-time-" + storeKind, storeKind);
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "8", "postgres"));

        // pgbench writes throughout the backup: files grow, change and get truncated while they are read.
        var load = s.Cluster.RunToolAsync("pgbench", "-n", "-T", "8", "-c", "2", "postgres");
        await Task.Delay(500);
        await BackupAsync(s);
        await Proc.CheckAsync(load);

        await s.Cluster.SqlAsync("insert into t select g, 'wanted ' || g from generate_series(1, 500) g");
        var (target, expectedTable, expectedAccounts) = await MarkTargetTimeAndMoveOnAsync(s);

        await using var restored = await RestoreAndStartAsync(s, "restored", ["--target-time", target]);

        Assert.Equal(expectedTable, await restored.SqlAsync(TableHash));
        Assert.Equal(expectedAccounts, await restored.SqlAsync(AccountsHash));
        Assert.Equal("0", await restored.SqlAsync("select count(*) from t where note like 'unwanted%'"));
        Secrets.AssertNoneIn(s.Cluster.ServerLog + restored.ServerLog);
    }

    [Theory]
    [InlineData("local")]
    [InlineData("s3")]
    public async Task RemoteBackupOverTheReplicationProtocolRestores(string storeKind)
    {
        var s = await StartSourceAsync("backup-remote-" + storeKind, storeKind);
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "4", "postgres"));
        await s.Cluster.SqlAsync("insert into t select g, 'before ' || g from generate_series(1, 300) g");

        // pg_basebackup behind a wrapper that writes down the environment it was given.
        var bin = Path.Combine(s.Work, "bin");
        TestEnv.CreateDirectory(bin);
        var seen = Path.Combine(s.Work, "pg_basebackup.env");
        await File.WriteAllTextAsync(Path.Combine(bin, "pg_basebackup"), $"#!/bin/sh\nenv > '{seen}'\nexec /usr/lib/postgresql/15/bin/pg_basebackup \"$@\"\n");
        File.SetUnixFileMode(Path.Combine(bin, "pg_basebackup"), (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(s.Work, (UnixFileMode)0b111_111_111);

        // As a CronJob would: TCP to the server, no access to the data directory (--pgdata is not even known),
        // the store's secrets in the environment.
        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--remote", "--config", s.Store.ConfigFile],
            new Dictionary<string, string?>
            {
                ["PGHOST"] = "127.0.0.1", ["PGPORT"] = s.Cluster.Port.ToString(), ["PGUSER"] = "postgres", ["CLOUDARCHIVE_PG_BIN"] = bin,
                ["AZURE_STORAGE_CONNECTION_STRING"] = "AccountName=x;AccountKey=planted-azure-secret", ["AWS_SESSION_TOKEN"] = "planted-aws-token",
            });
        Assert.True(r.ExitCode == 0, r.ToString());
        // No child program sees the store's secrets; libpq's own settings reach it.
        var childEnv = await File.ReadAllLinesAsync(seen);
        Assert.Contains("PGPORT=" + s.Cluster.Port, childEnv);
        Assert.DoesNotContain(childEnv, l => l.StartsWith("AWS_", StringComparison.Ordinal) || l.StartsWith("AZURE_", StringComparison.Ordinal) || l.StartsWith("CLOUDARCHIVE_", StringComparison.Ordinal));
        Assert.DoesNotContain("planted-", string.Join('\n', childEnv));
        await s.Cluster.SqlAsync("insert into t select g, 'after ' || g from generate_series(301, 400) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        var accounts = await s.Cluster.SqlAsync(AccountsHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        await using var restored = await RestoreAndStartAsync(s, "restored", []);

        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        Assert.Equal(accounts, await restored.SqlAsync(AccountsHash));
    }

    /// <summary>
    /// A test CA (ca.crt), another CA that vouches for nothing here (other.crt), a server certificate for 127.0.0.1 and a
    /// client certificate for user postgres, both from the test CA; the keys belong to postgres, mode 0600, as libpq and
    /// the server require.
    /// </summary>
    private static async Task<Func<string, string>> TestCertificatesAsync()
    {
        var certs = TestEnv.NewWorkDir("tls-certs");
        string C(string f) => Path.Combine(certs, f);
        async Task OpenSsl(params string[] args) => await Proc.CheckAsync(Proc.RunAsync("openssl", args));
        await OpenSsl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", C("ca.key"), "-out", C("ca.crt"), "-days", "1", "-subj", "/CN=cloudarchive test CA");
        await OpenSsl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", C("other.key"), "-out", C("other.crt"), "-days", "1", "-subj", "/CN=another CA");
        await File.WriteAllTextAsync(C("san.ext"), "subjectAltName=IP:127.0.0.1\n");
        foreach (var (name, subject) in new[] { ("server", "/CN=127.0.0.1"), ("client", "/CN=postgres") })
        {
            await OpenSsl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", C(name + ".key"), "-out", C(name + ".csr"), "-subj", subject);
            string[] sign = ["x509", "-req", "-in", C(name + ".csr"), "-CA", C("ca.crt"), "-CAkey", C("ca.key"), "-CAcreateserial", "-out", C(name + ".crt"), "-days", "1"];
            await OpenSsl(name == "server" ? [.. sign, "-extfile", C("san.ext")] : sign);
            File.SetUnixFileMode(C(name + ".key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:", C(name + ".key")));
        }
        foreach (var f in Directory.GetFiles(certs).Where(f => !f.EndsWith(".key", StringComparison.Ordinal))) File.SetUnixFileMode(f, (UnixFileMode)0b110_100_100);
        return C;
    }

    /// <summary>A CronJob over TCP: libpq's TLS settings verify the server for backup-push as they do for psql.</summary>
    [Fact]
    public async Task BackupOverTcpVerifiesTheServersCertificateAsLibpqDoes()
    {
        var C = await TestCertificatesAsync();
        var s = await StartSourceAsync("backup-tls", "local", "ssl = on", $"ssl_cert_file = '{C("server.crt")}'", $"ssl_key_file = '{C("server.key")}'");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'over tls ' || g from generate_series(1, 100) g");
        Dictionary<string, string?> Tcp(string rootCert) => new()
        {
            ["PGHOST"] = "127.0.0.1", ["PGPORT"] = s.Cluster.Port.ToString(), ["PGUSER"] = "postgres", ["PGSSLMODE"] = "verify-full", ["PGSSLROOTCERT"] = rootCert,
        };

        var refused = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--config", s.Store.ConfigFile], Tcp(C("other.crt")));
        Assert.True(refused.ExitCode == 9, refused.ToString());
        Assert.Single(refused.StderrLines);
        var ok = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--config", s.Store.ConfigFile], Tcp(C("ca.crt")));
        Assert.True(ok.ExitCode == 0, ok.ToString());

        await AssertLatestRestoresAsync(s);
    }

    /// <summary>
    /// backup-push --remote hands pg_basebackup every setting of --dbname: here the server asks for a client certificate and a
    /// password over verified TLS, and only --dbname names the certificate and holds the password (PGHOST points nowhere).
    /// The password reaches pg_basebackup in its environment, never in its argv.
    /// </summary>
    [Fact]
    public async Task RemoteBackupHandsPgBasebackupEveryConnectionSettingAndThePasswordOnlyInItsEnvironment()
    {
        var C = await TestCertificatesAsync();
        var s = await StartSourceAsync("backup-remote-conninfo", "local", "ssl = on", $"ssl_cert_file = '{C("server.crt")}'",
            $"ssl_key_file = '{C("server.key")}'", $"ssl_ca_file = '{C("ca.crt")}'");
        await using var _ = s.Cluster;
        var secret = "pw-" + Guid.NewGuid().ToString("N")[..16];
        await s.Cluster.SqlAsync($"alter role postgres password '{secret}'; insert into t select g, 'remote ' || g from generate_series(1, 100) g");
        const string Tls = "127.0.0.1/32 scram-sha-256 clientcert=verify-full";
        await Proc.CheckAsync(Proc.AsPostgresAsync(["sh", "-c",
            $"printf 'local all all trust\\nhostssl all postgres {Tls}\\nhostssl replication postgres {Tls}\\n' > '{s.Cluster.DataDir}/pg_hba.conf'"]));
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        // pg_basebackup behind a wrapper that writes down its argv, and apart from it, its PGPASSWORD.
        var bin = TestEnv.SharedDir(s.Work, "bin");
        var seen = Path.Combine(s.Work, "pg_basebackup.seen");
        await File.WriteAllTextAsync(Path.Combine(bin, "pg_basebackup"),
            $"#!/bin/sh\necho \"$* | PGPASSWORD=${{PGPASSWORD-}}\" >> '{seen}'\nexec /usr/lib/postgresql/15/bin/pg_basebackup \"$@\"\n");
        File.SetUnixFileMode(Path.Combine(bin, "pg_basebackup"), (UnixFileMode)0b111_101_101);

        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--remote", "--config", s.Store.ConfigFile, "--dbname",
            $"host=127.0.0.1 port={s.Cluster.Port} user=postgres password={secret} sslmode=verify-full sslrootcert={C("ca.crt")} " +
            $"sslcert={C("client.crt")} sslkey={C("client.key")}"],
            new Dictionary<string, string?> { ["PGHOST"] = "/nonexistent", ["CLOUDARCHIVE_PG_BIN"] = bin }, null, TimeSpan.FromMinutes(5));

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain(secret, r.Stdout + r.Stderr);
        var call = (await File.ReadAllLinesAsync(seen)).Single(l => !l.StartsWith("--version", StringComparison.Ordinal));
        var bar = call.LastIndexOf(" | ", StringComparison.Ordinal);
        Assert.DoesNotContain(secret, call[..bar]);
        Assert.Contains("sslmode='verify-full'", call[..bar]);
        Assert.Equal("PGPASSWORD=" + secret, call[(bar + 3)..]);
        await AssertLatestRestoresAsync(s);
    }

    [Fact]
    public async Task ABackupWhoseWalIsNotInTheStoreFailsAndIsNotListed()
    {
        // archive_command "succeeds" without archiving here (it archives elsewhere, or drops): no WAL for the backup.
        var work = TestEnv.NewWorkDir("backup-no-wal");
        var store = TestStore.Create("local", work);
        await using var cluster = await PgCluster.InitAsync(Path.Combine(work, "source"), ["archive_mode = on", "archive_command = '/bin/true'"]);
        await cluster.StartAsync();
        var s = new Source(work, store, cluster);

        var r = await CloudArchiveAsPostgres(s, "backup-push", "--wal-timeout", "2");

        Assert.True(r.ExitCode == 8, r.ToString());
        Assert.Matches("its WAL segment [0-9A-F]{24} \\(of [0-9A-F]{24} - [0-9A-F]{24}\\) is not there after 2 s", r.Stderr);
        var list = await CloudArchiveAsPostgres(s, "backup-list");
        Assert.Equal("no backups", list.Stdout.Trim());
    }

    [Fact]
    public async Task TheRestoreCommandWorksForAStorePathThatShellsAndPostgresWouldMangle()
    {
        // Spaces, $, quotes, a backtick, a backslash and % (which restore_command would read as %p): all reach wal-fetch.
        var work = TestEnv.NewWorkDir("backup-odd-path");
        var store = TestStore.Create("local", work, localName: "st ore $HOME 'q' \"d\" `id` back\\slash 100%p");
        var cluster = await PgCluster.InitAsync(Path.Combine(work, "source"),
            ["archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args}'"]);
        await using var _ = cluster;
        await cluster.StartAsync();
        await cluster.SqlAsync("create table t (id int primary key, note text)");
        var s = new Source(work, store, cluster);
        await s.Cluster.SqlAsync("insert into t select g, 'in backup ' || g from generate_series(1, 100) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'after ' || g from generate_series(101, 200) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        // The store comes from the command line only, so the restore_command must carry it intact.
        File.WriteAllText(store.ConfigFile, "CLOUDARCHIVE_RETRY_TIMEOUT=20\n");
        await using var restored = await RestoreAndStartAsync(s, "restored", ["--store", store.Url]);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        Assert.Contains("st ore $HOME", await File.ReadAllTextAsync(Path.Combine(restored.DataDir, "postgresql.auto.conf")));
    }

    /// <summary>
    /// "restored" means durable, as after pg_basebackup or pgBackRest: every file and directory the restore wrote was
    /// fsynced before it exited 0 (strace records each fsync and the path of its descriptor), so a machine that crashes
    /// after it cannot leave files with holes for recovery to replay over. The restored copy then starts with the rows.
    /// </summary>
    [Fact]
    public async Task ARestoreHasSyncedEveryFileAndDirectoryItWroteWhenItSucceeds()
    {
        var s = await StartSourceAsync("backup-sync");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'durable ' || g from generate_series(1, 2000) g");
        await BackupAsync(s);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        var dir = TestEnv.SharedDir(s.Work, "synced");
        var data = Path.Combine(dir, "data");
        var trace = Path.Combine(dir, "fsync.trace");
        // -ff: a file per thread, so no call is split across lines by another thread's.
        var r = await Proc.AsPostgresAsync(["strace", "-ff", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace,
            TestEnv.Binary, "restore", "--to", data, "--target-action", "promote", "--config", s.Store.ConfigFile], timeout: TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode == 0, r.ToString());
        var synced = Directory.EnumerateFiles(dir, "fsync.trace.*").SelectMany(File.ReadLines)
            .Select(l => System.Text.RegularExpressions.Regex.Match(l, @"f(?:data)?sync\(\d+<(.+)>\)\s+=\s+0"))
            .Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        var written = Directory.EnumerateFileSystemEntries(data, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Append(data).ToList();
        Assert.True(written.Count > 900, $"{written.Count} entries restored");
        var unsynced = written.Where(p => !synced.Contains(p)).ToList();
        Assert.True(unsynced.Count == 0, $"{unsynced.Count} of {written.Count} restored files and directories were not synced, e.g. {string.Join(", ", unsynced.Take(5))}");

        await using var restored = await PgCluster.AdoptWithAsync(s.Cluster.BinDir, dir, ["archive_mode = off"]);
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    [Fact]
    public async Task RestoresToAnLsnAnXidARestorePointAndImmediately()
    {
        var s = await StartSourceAsync("backup-targets");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'in backup ' || g from generate_series(1, 100) g");
        await BackupAsync(s);
        var atBackup = await s.Cluster.SqlAsync(TableHash);

        await s.Cluster.SqlAsync("insert into t select g, 'lsn ' || g from generate_series(101, 200) g");
        var atLsn = await s.Cluster.SqlAsync(TableHash);
        var lsn = await s.Cluster.SqlAsync("select pg_current_wal_insert_lsn()::text");

        var xid = await s.Cluster.SqlAsync("begin; insert into t select g, 'xid ' || g from generate_series(201, 300) g; select txid_current()::text; commit;");
        var atXid = await s.Cluster.SqlAsync(TableHash);

        await s.Cluster.SqlAsync("insert into t select g, 'name ' || g from generate_series(301, 400) g");
        var atName = await s.Cluster.SqlAsync(TableHash);
        await s.Cluster.SqlAsync("select pg_create_restore_point('before_cleanup')");
        await s.Cluster.SqlAsync("delete from t where id % 2 = 0");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        var cases = new (string Dir, string[] Args, string Expected)[]
        {
            ("immediate", ["--target-immediate"], atBackup),
            ("lsn", ["--target-lsn", lsn], atLsn),
            ("xid", ["--target-xid", xid], atXid),
            ("name", ["--target-name", "before_cleanup"], atName),
        };
        foreach (var (dir, args, expected) in cases)
        {
            await using var restored = await RestoreAndStartAsync(s, dir, args);
            Assert.True(expected == await restored.SqlAsync(TableHash), $"restore to {dir} target gave other rows");
            await restored.StopAsync();
        }
    }

    [Fact]
    public async Task SecondRecoveryFollowsTheNewTimelineFromTheOriginalBackup()
    {
        var s = await StartSourceAsync("backup-timelines");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'tl1 ' || g from generate_series(1, 100) g");
        var original = await BackupAsync(s);
        await s.Cluster.SqlAsync("select pg_create_restore_point('fork')");
        await s.Cluster.SqlAsync("insert into t select g, 'tl1 after fork ' || g from generate_series(101, 200) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        // First recovery: to the fork point, promoted to timeline 2, archiving to the same store.
        var first = await RestoreAndStartAsync(s, "first", ["--target-name", "fork"], archive: true);
        Assert.Equal("2", await first.SqlAsync("select timeline_id from pg_control_checkpoint()"));
        await first.SqlAsync("insert into t select g, 'tl2 ' || g from generate_series(1001, 1100) g");
        var onTimeline2 = await first.SqlAsync(TableHash);
        await first.SqlAsync("select pg_create_restore_point('on_tl2')");
        await first.SqlAsync("insert into t select g, 'tl2 later ' || g from generate_series(1101, 1200) g");
        // A backup of the restored cluster: its postgresql.auto.conf still holds the first restore's settings.
        var ofRestored = await BackupAsync(new Source(s.Work, s.Store, first));
        await first.SqlAsync("insert into t select g, 'tl2 last ' || g from generate_series(1201, 1300) g");
        var atEnd = await first.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(first);
        await first.StopAsync();

        var plan = await CloudArchiveAsPostgres(s, "plan", "--target-name", "on_tl2", "--backup", original);
        Assert.True(plan.ExitCode == 0, plan.ToString());
        Assert.Contains("timelines    1 -> 2", plan.Stdout);

        await using var second = await RestoreAndStartAsync(s, "second", ["--target-name", "on_tl2", "--backup", original]);
        Assert.Equal(onTimeline2, await second.SqlAsync(TableHash));
        Assert.Equal("0", await second.SqlAsync("select count(*) from t where note like 'tl1 after fork%' or note like 'tl2 later%'"));
        await second.StopAsync();

        // A restore of the restore, to the end of the archive: the inherited recovery_target_name 'fork' would stop
        // it before the backup is even consistent; restore removes it and says so.
        var dir = TestEnv.SharedDir(s.Work, "third");
        var r = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"), "--backup", ofRestored);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("removed from postgresql.auto.conf the recovery settings the backup carried (an earlier restore's): restore_command, recovery_target_name", r.Stdout);
        await using var third = await PgCluster.AdoptAsync(dir, ["archive_mode = off"]);
        await third.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(third);
        Assert.Equal(atEnd, await third.SqlAsync(TableHash));
    }

    [Fact]
    public async Task TablespaceOutsideTheDataDirectoryIsRestoredToANewPlace()
    {
        var s = await StartSourceAsync("backup-tblspc");
        await using var _ = s.Cluster;
        var oldPlace = Path.Combine(s.Work, "ts-old");
        var newPlace = Path.Combine(s.Work, "ts-new");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", oldPlace]));
        await s.Cluster.SqlAsync($"create tablespace fast location '{oldPlace}'");
        await s.Cluster.SqlAsync("create table far (id int, v text) tablespace fast");
        await s.Cluster.SqlAsync("insert into far select g, md5(g::text) from generate_series(1, 5000) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into far select g, 'after backup' from generate_series(5001, 6000) g");
        var expected = await s.Cluster.SqlAsync("select count(*) || md5(string_agg(v, ',' order by id)) from far");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        await using var restored = await RestoreAndStartAsync(s, "restored", ["--tablespace-map", $"{oldPlace}={newPlace}"]);

        Assert.Equal(expected, await restored.SqlAsync("select count(*) || md5(string_agg(v, ',' order by id)) from far"));
        Assert.Equal(newPlace, await restored.SqlAsync("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'fast'"));
    }

    [Fact]
    public async Task InterruptedBackupLeavesNothingUsableAndTheServerNotInBackup()
    {
        var s = await StartSourceAsync("backup-killed");
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "20", "postgres"));

        // Killed while it streams the data directory.
        var psi = Proc.Info(TestEnv.Infra("pg-cluster.sh"), ["as-postgres", TestEnv.Binary, "backup-push", "--config", s.Store.ConfigFile, "--jobs", "1"],
            new Dictionary<string, string?> { ["PGHOST"] = s.Cluster.Dir, ["PGPORT"] = s.Cluster.Port.ToString() });
        using (var p = Process.Start(psi)!)
        {
            var storeDir = new Uri(s.Store.Url).LocalPath;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!Directory.Exists(Path.Combine(storeDir, "backups")) && DateTime.UtcNow < deadline) await Task.Delay(20);
            // This test's backup only: other tests run their own backup-push at the same time.
            await Proc.CheckAsync(Proc.RunAsync("pkill", "-KILL", "-f", $"{TestEnv.Binary} backup-push --config {s.Store.ConfigFile}"));
            await p.WaitForExitAsync();
        }
        // Server stopped in the middle of a backup: as soon as its first bundle is being written (a fixed delay was not enough on
        // a fast machine, where the whole backup of this cluster took 0.7 s and completed before the stop).
        var backups = Path.Combine(new Uri(s.Store.Url).LocalPath, "backups");
        var before = Directory.GetDirectories(backups).Length;
        var stopped = CloudArchiveAsPostgres(s, "backup-push", "--jobs", "1");
        var until = DateTime.UtcNow.AddSeconds(60);
        while (Directory.GetDirectories(backups).Length == before && !stopped.IsCompleted && DateTime.UtcNow < until) await Task.Delay(10);
        await s.Cluster.StopAsync("immediate");
        var failed = await stopped;
        Assert.NotEqual(0, failed.ExitCode);
        Assert.DoesNotContain("   at ", failed.Stderr);

        var list = await CloudArchiveAsPostgres(s, "backup-list");
        Assert.Equal("no backups", list.Stdout.Trim());
        var plan = await CloudArchiveAsPostgres(s, "plan");
        Assert.NotEqual(0, plan.ExitCode);

        // Not left in backup mode: a new backup starts and completes at once, and it restores.
        await s.Cluster.StartAsync();
        await s.Cluster.SqlAsync("insert into t select g, 'x' from generate_series(1, 10) g");
        await BackupAsync(s);
        await AssertLatestRestoresAsync(s);
    }

    [Fact]
    public async Task BackupToAStoreThatRefusesWritesFailsAndLeavesNothing()
    {
        var s = await StartSourceAsync("backup-refused");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'x' from generate_series(1, 100) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        // The store cannot take the backup's bundles: where their directory belongs there is a file.
        var storeDir = new Uri(s.Store.Url).LocalPath;
        var blocker = Path.Combine(storeDir, "backups");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", blocker]));

        var failed = await CloudArchiveAsPostgres(s, "backup-push");

        Assert.Equal(4, failed.ExitCode);
        Assert.Single(failed.StderrLines);
        Assert.Equal("no backups", (await CloudArchiveAsPostgres(s, "backup-list")).Stdout.Trim());
        // The failed backup's session is gone, so the server is not stuck in backup mode.
        Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_stat_activity where backend_type = 'client backend' and application_name = 'cloudarchive'"));
        await Proc.CheckAsync(Proc.AsPostgresAsync(["rm", blocker]));
        await BackupAsync(s);
        await AssertLatestRestoresAsync(s);
    }

    [Fact]
    public async Task PlanAndRestoreRefuseWhatCannotWork()
    {
        var s = await StartSourceAsync("backup-refusals");
        await using var _ = s.Cluster;
        var before = await s.Cluster.SqlAsync("select (now() - interval '1 hour')::text");
        await BackupAsync(s);
        for (var i = 0; i < 3; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'x' from generate_series({i * 1000 + 1}, {(i + 1) * 1000}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        var early = await CloudArchiveAsPostgres(s, "plan", "--target-time", before);
        Assert.Equal(8, early.ExitCode);
        Assert.Contains("before the end of every backup", early.Stderr);

        var notEmpty = Path.Combine(s.Work, "not-empty");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", "-p", Path.Combine(notEmpty, "something")]));
        var refused = await CloudArchiveAsPostgres(s, "restore", "--to", notEmpty);
        Assert.Equal(6, refused.ExitCode);
        Assert.Contains("not empty", refused.Stderr);

        // A segment between the backup's end and the archive's end goes missing: the plan names it.
        var storeDir = new Uri(s.Store.Url).LocalPath;
        var segments = Directory.GetFiles(Path.Combine(storeDir, "manifest", "wal", "00000001"), "0000000100000000000000??.json").Order().ToList();
        var victim = Path.GetFileName(segments[^2])[..24];
        File.Delete(segments[^2]);
        var gap = await CloudArchiveAsPostgres(s, "plan", "--target-immediate", "--json");
        Assert.Equal(0, gap.ExitCode); // the backup's own WAL is intact
        var plan = System.Text.Json.JsonDocument.Parse(gap.Stdout).RootElement;
        Assert.Equal("immediate", plan.GetProperty("target").GetString());
        Assert.Equal(1, plan.GetProperty("targetTimeline").GetInt32());
        Assert.Equal(plan.GetProperty("firstWalSegment").GetString(), plan.GetProperty("wal")[0].GetProperty("first").GetString());
        Assert.True(plan.GetProperty("backupBytes").GetInt64() > 0);
        var toEnd = await CloudArchiveAsPostgres(s, "plan", "--target-lsn", "0/FF000000");
        Assert.Equal(8, toEnd.ExitCode);
        Assert.Contains(victim, toEnd.Stderr);
    }
}
