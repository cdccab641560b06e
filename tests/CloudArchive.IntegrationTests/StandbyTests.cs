using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// Clusters with standbys, on real PostgreSQL 15 servers on 127.0.0.1: a standby made from the store with
/// restore --standby replays the archive, then streams from its primary, and stays a standby.
/// </summary>
public sealed class StandbyTests
{
    private static async Task WaitForAsync(Func<Task<bool>> done, string what, PgCluster cluster)
    {
        for (var i = 0; i < 600; i++)
        {
            if (await done()) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"{what} did not happen in 60 s:\n{cluster.ServerLog}");
    }

    /// <summary>
    /// restore --standby --primary-conninfo from the store: standby.signal, the newest timeline, no target; the server
    /// replays the archived WAL, then streams what the primary has not archived yet, serves reads, never promotes by
    /// itself, and promotes on request with every row. The conninfo's password reaches postgresql.auto.conf and no
    /// output; a target with --standby, and --primary-conninfo without it, are usage errors that write nothing.
    /// </summary>
    [Theory]
    [InlineData("local", 15)]
    [InlineData("s3", 15)]
    [InlineData("azure", 15)]
    [InlineData("local", 13)]
    [InlineData("local", 18)]
    public async Task ARestoreAsAStandbyReplaysTheArchiveThenStreamsFromItsPrimaryAndNeverPromotesByItself(string storeKind, int major)
    {
        var bin = major == 15 ? null : PgVersions.BinDir(major);
        var s = await StartSourceWithAsync(bin, [], $"standby-{storeKind}-{major}", storeKind);
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 200) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'archived ' || g from generate_series(201, 400) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);

        var dir = TestEnv.SharedDir(s.Work, "standby");
        var data = Path.Combine(dir, "data");
        const string password = "standby-secret-7d1e";
        var conninfo = $"host={s.Cluster.Dir} port={s.Cluster.Port} user=postgres password={password} application_name=restored";
        var targeted = await CloudArchiveAsPostgres(s, "restore", "--to", data, "--standby", "--target-time", "2026-01-01 00:00:00+00");
        Assert.Contains("--standby takes no --target-*", Expect.OneLineError(targeted, 2));
        var lonely = await CloudArchiveAsPostgres(s, "restore", "--to", data, "--primary-conninfo", conninfo);
        Assert.Contains("--primary-conninfo is for --standby", Expect.OneLineError(lonely, 2));
        Assert.False(Directory.Exists(data) && Directory.EnumerateFileSystemEntries(data).Any());

        var r = await CloudArchiveAsPostgres(s, "restore", "--to", data, "--standby", "--primary-conninfo", conninfo);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain(password, r.Stdout + r.Stderr);
        Assert.Contains("wrote backup_label, standby.signal", r.Stdout);
        Assert.Contains("recovery_target_timeline = 'latest'", r.Stdout);
        Assert.True(File.Exists(Path.Combine(data, "standby.signal")));
        Assert.False(File.Exists(Path.Combine(data, "recovery.signal")));
        var auto = await File.ReadAllTextAsync(Path.Combine(data, "postgresql.auto.conf"));
        Assert.Contains($"primary_conninfo = '{conninfo}'", auto);
        Assert.DoesNotContain("recovery_target_action", auto);

        await using var standby = await PgCluster.AdoptWithAsync(bin, dir, "archive_mode = off", "hot_standby = on");
        await standby.StartAsync();
        // Streaming: rows the primary commits now (in a segment not yet archived) reach the standby.
        await WaitForAsync(async () => await standby.SqlAsync("select count(*) from pg_stat_wal_receiver where status = 'streaming'") == "1",
            "streaming from the primary", standby);
        await s.Cluster.SqlAsync("insert into t select g, 'streamed ' || g from generate_series(401, 450) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await WaitForAsync(async () => await standby.SqlAsync(TableHash) == expected, "the streamed rows on the standby", standby);
        Assert.Equal("t", await standby.SqlAsync("select pg_is_in_recovery()"));
        Assert.Equal("restored", await s.Cluster.SqlAsync("select application_name from pg_stat_replication"));

        // It stays a standby (no target, nothing to promote it) until told.
        await Task.Delay(2000);
        Assert.Equal("t", await standby.SqlAsync("select pg_is_in_recovery()"));
        await standby.SqlAsync("select pg_promote()");
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(standby);
        Assert.Equal(expected, await standby.SqlAsync(TableHash));
    }

    /// <summary>
    /// backup-push pointed at a streaming standby of an idle primary: the standby cannot switch WAL, so backup-push asks
    /// the primary (the standby's own primary_conninfo) and the backup's last segment is archived at once (within a
    /// --wal-timeout of 20 s that the primary's idle archiving would never meet); the record says it was taken on the
    /// standby, and a restore of it holds every row.
    /// </summary>
    [Fact]
    public async Task ABackupOfAStandbyAsksItsIdlePrimaryToSwitchAndRestoresExactly()
    {
        var s = await StartSourceAsync("standby-backup");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before ' || g from generate_series(1, 300) g");
        var dir = TestEnv.SharedDir(s.Work, "standby");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["/usr/lib/postgresql/15/bin/pg_basebackup", "-h", s.Cluster.Dir, "-p", s.Cluster.Port.ToString(),
            "-U", "postgres", "-D", Path.Combine(dir, "data"), "-R", "-X", "stream", "--no-sync"]));
        await using var standby = await PgCluster.AdoptAsync(dir, "archive_mode = on", "hot_standby = on", "cluster_name = 'db2'");
        await standby.StartAsync();
        await s.Cluster.SqlAsync("insert into t select g, 'streamed ' || g from generate_series(301, 400) g");
        var streamed = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        // Rows in the primary's current segment, which an idle primary would not archive for as long as it stays idle.
        await s.Cluster.SqlAsync("insert into t select g, 'unarchived ' || g from generate_series(401, 420) g");
        streamed = await s.Cluster.SqlAsync(TableHash);
        await WaitForAsync(async () => await standby.SqlAsync(TableHash) == streamed, "replay on the standby", standby);

        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--dbname", $"host={standby.Dir} port={standby.Port} user=postgres",
            "--wal-timeout", "20", "--log-level", "info", "--config", s.Store.ConfigFile], timeout: TimeSpan.FromMinutes(3));

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("the backup was taken on a standby: the primary at", r.Stderr);
        var list = await CloudArchiveAsPostgres(s, "backup-list");
        Assert.Contains("on standby db2", list.Stdout);

        // Over the replication protocol (pg_basebackup against the standby, which writes no backup history file).
        await s.Cluster.SqlAsync("insert into t select g, 'before the remote backup ' || g from generate_series(421, 440) g");
        streamed = await s.Cluster.SqlAsync(TableHash);
        await WaitForAsync(async () => await standby.SqlAsync(TableHash) == streamed, "replay on the standby", standby);
        var remote = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--remote", "--dbname",
            $"host={standby.Dir} port={standby.Port} user=postgres", "--wal-timeout", "20", "--config", s.Store.ConfigFile], timeout: TimeSpan.FromMinutes(3));
        Assert.True(remote.ExitCode == 0, remote.ToString());
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches((await CloudArchiveAsPostgres(s, "backup-list")).Stdout, "on standby db2").Count);

        await s.Cluster.SqlAsync("insert into t select g, 'after ' || g from generate_series(441, 450) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        // A drill of the standby's backup passes too.
        var drills = TestEnv.SharedDir(s.Work, "drills");
        var drill = await CloudArchiveAsPostgres(s, "drill", "--drill-dir", drills, "--check", $"select ({TableHash}) = '{expected}'");
        Assert.True(drill.ExitCode == 0, drill.ToString());
        Assert.Contains(": PASSED", drill.Stdout);
    }

    /// <summary>
    /// A failover while the old primary still archives: the promoted standby archives timeline 2 (its history file
    /// first) into the same store, the old primary's late segments of timeline 1 are kept beside it; "latest" restores
    /// the new primary's rows (not the old primary's late ones), and a time before the failover restores the rows
    /// committed before it; wal-list shows both timelines.
    /// </summary>
    [Fact]
    public async Task AfterAFailoverLatestFollowsTheNewTimelineAndATimeBeforeItRestoresTheOldOne()
    {
        var s = await StartSourceAsync("standby-failover");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'first ' || g from generate_series(1, 200) g");
        await BackupAsync(s);
        var dir = TestEnv.SharedDir(s.Work, "standby");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["/usr/lib/postgresql/15/bin/pg_basebackup", "-h", s.Cluster.Dir, "-p", s.Cluster.Port.ToString(),
            "-U", "postgres", "-D", Path.Combine(dir, "data"), "-R", "-X", "stream", "--no-sync"]));
        await using var standby = await PgCluster.AdoptAsync(dir, "hot_standby = on");
        await standby.StartAsync();

        await s.Cluster.SqlAsync("insert into t select g, 'before the failover ' || g from generate_series(201, 300) g");
        var beforeHash = await s.Cluster.SqlAsync(TableHash);
        var before = await s.Cluster.SqlAsync("select now()");
        await Task.Delay(1100);
        await s.Cluster.SqlAsync("insert into t select g, 'replayed, then promoted ' || g from generate_series(301, 400) g");
        var atFailover = await s.Cluster.SqlAsync(TableHash);
        await WaitForAsync(async () => await standby.SqlAsync(TableHash) == atFailover, "replay on the standby", standby);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);

        await standby.SqlAsync("select pg_promote()");
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(standby);
        await standby.SqlAsync("insert into t select g, 'new primary ' || g from generate_series(401, 500) g");
        var expected = await standby.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(standby);
        // The old primary, not yet fenced, archives a late segment of timeline 1 into the same store.
        await s.Cluster.SqlAsync("insert into t select g, 'late on the old primary ' || g from generate_series(1001, 1100) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        Assert.Equal("0", await s.Cluster.SqlAsync("select failed_count from pg_stat_archiver"));
        Assert.Equal("0", await standby.SqlAsync("select failed_count from pg_stat_archiver"));

        var walList = await CloudArchiveAsPostgres(s, "wal-list");
        Assert.Contains("timeline 1", walList.Stdout);
        Assert.Contains("timeline 2", walList.Stdout);
        Assert.True(File.Exists(Path.Combine(new Uri(s.Store.Url).LocalPath, "wal", "00000002", "00000002.history.zst")), walList.Stdout);
        // status: the newest WAL of each timeline, and which node (host) pushed it.
        var status = (await CloudArchiveAsPostgres(s, "status")).Stdout;
        Assert.Contains("  timeline 1: last ", status);
        Assert.Contains("  timeline 2: last ", status);
        Assert.Contains($"pushed by {Environment.MachineName}", status);

        await using (var latest = await RestoreAndStartAsync(s, "latest", []))
            Assert.Equal(expected, await latest.SqlAsync(TableHash));
        await using (var old = await RestoreAndStartAsync(s, "before", ["--target-time", before]))
            Assert.Equal(beforeHash, await old.SqlAsync(TableHash));

        // The old primary becomes a standby of the new one without a full copy: --delta --standby over its own data directory.
        await s.Cluster.StopAsync();
        var rejoin = await CloudArchiveAsPostgres(s, "restore", "--to", s.Cluster.DataDir, "--delta", "--standby", "--primary-conninfo",
            $"host={standby.Dir} port={standby.Port} user=postgres application_name=old-primary");
        Assert.True(rejoin.ExitCode == 0, rejoin.ToString());
        Assert.Contains("delta:", rejoin.Stdout);
        await s.Cluster.StartAsync();
        await standby.SqlAsync("insert into t select g, 'while the old primary rejoins ' || g from generate_series(501, 520) g");
        expected = await standby.SqlAsync(TableHash);
        await WaitForAsync(async () => await s.Cluster.SqlAsync(TableHash) == expected, "the old primary following the new one", s.Cluster);
        Assert.Equal("t", await s.Cluster.SqlAsync("select pg_is_in_recovery()"));
        Assert.Equal("old-primary", await standby.SqlAsync("select application_name from pg_stat_replication"));
    }

    /// <summary>
    /// archive_mode = always on a standby beside on on the primary, one store: both archive every segment, the second
    /// push of each (the same content) exits 0, nothing fails on either node, and each segment is stored once.
    /// </summary>
    [Fact]
    public async Task APrimaryAndAStandbyWithArchiveModeAlwaysBothArchiveIntoOneStoreWithoutAFailure()
    {
        var s = await StartSourceAsync("standby-always");
        await using var _ = s.Cluster;
        var dir = TestEnv.SharedDir(s.Work, "standby");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["/usr/lib/postgresql/15/bin/pg_basebackup", "-h", s.Cluster.Dir, "-p", s.Cluster.Port.ToString(),
            "-U", "postgres", "-D", Path.Combine(dir, "data"), "-R", "-X", "stream", "--no-sync"]));
        await using var standby = await PgCluster.AdoptAsync(dir, "hot_standby = on", "archive_mode = always");
        await standby.StartAsync();
        for (var i = 0; i < 4; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'row ' || g from generate_series({i * 100 + 1}, {i * 100 + 100}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var last = await s.Cluster.SqlAsync("select last_archived_wal from pg_stat_archiver");
        await WaitForAsync(async () => string.CompareOrdinal(await standby.SqlAsync("select coalesce(last_archived_wal, '') from pg_stat_archiver"), last) >= 0,
            $"the standby archiving {last}", standby);

        Assert.Equal("0", await s.Cluster.SqlAsync("select failed_count from pg_stat_archiver"));
        Assert.Equal("0", await standby.SqlAsync("select failed_count from pg_stat_archiver"));
        var segments = Directory.GetFiles(Path.Combine(new Uri(s.Store.Url).LocalPath, "wal", "00000001"), "????????????????????????.zst");
        Assert.True(segments.Length >= 5, string.Join(", ", segments));
    }

    /// <summary>
    /// The version matrix of a standby's life with the store alone (no pg_basebackup of that major): a standby made with
    /// restore --standby, a backup taken on it while its primary idles (the primary asked to switch), and a restore of
    /// that backup with every row, on PostgreSQL 13 and 18.
    /// </summary>
    [Theory]
    [InlineData(13)]
    [InlineData(18)]
    public async Task AStandbyMadeFromTheStoreIsBackedUpAndThatBackupRestores(int major)
    {
        var bin = PgVersions.BinDir(major);
        var s = await StartSourceWithAsync(bin, [], $"standby-matrix-{major}", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'first ' || g from generate_series(1, 200) g");
        await BackupAsync(s);
        var dir = TestEnv.SharedDir(s.Work, "standby");
        var made = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"), "--standby", "--primary-conninfo",
            $"host={s.Cluster.Dir} port={s.Cluster.Port} user=postgres");
        Assert.True(made.ExitCode == 0, made.ToString());
        await using var standby = await PgCluster.AdoptWithAsync(bin, dir, "hot_standby = on", "cluster_name = 'replica'");
        await standby.StartAsync();
        // From 17 on a switch without new WAL names no new segment: write some first.
        await s.Cluster.SqlAsync("insert into t select g, 'archived ' || g from generate_series(201, 230) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.SqlAsync("insert into t select g, 'unarchived ' || g from generate_series(231, 260) g");
        var streamed = await s.Cluster.SqlAsync(TableHash);
        await WaitForAsync(async () => await standby.SqlAsync(TableHash) == streamed, "replay on the standby", standby);

        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "backup-push", "--dbname", $"host={standby.Dir} port={standby.Port} user=postgres",
            "--wal-timeout", "20", "--config", s.Store.ConfigFile], timeout: TimeSpan.FromMinutes(3));

        Assert.True(r.ExitCode == 0, r.ToString());
        var json = System.Text.Json.JsonDocument.Parse((await CloudArchiveAsPostgres(s, "backup-list", "--json")).Stdout).RootElement;
        Assert.Equal("standby replica", json[0].GetProperty("node").GetString());
        await s.Cluster.SqlAsync("insert into t select g, 'after ' || g from generate_series(261, 280) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await using var restored = await RestoreAndStartAsync(s, "restored", ["--backup", json[0].GetProperty("id").GetString()!]);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }
}
