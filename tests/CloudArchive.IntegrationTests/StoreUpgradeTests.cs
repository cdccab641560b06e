namespace CloudArchive.IntegrationTests;

/// <summary>
/// A major upgrade in one store: PostgreSQL 15 archives and is backed up, then a new PostgreSQL 17 cluster takes its
/// rows (a reload: a new system identifier, WAL names starting again at 1, as after pg_upgrade). Its archiving is refused
/// until store-upgrade, then resumes; both clusters' histories are listed and both restore, rows compared.
/// </summary>
public sealed class StoreUpgradeTests
{
    private const string Rows = "insert into t select g, 'row ' || g from generate_series(1, 1500) g";

    [Fact]
    public async Task AfterAnUpgradeFrom15To17BothClustersRestoreFromOneStore()
    {
        var old = await BackupRestoreTests.StartSourceAsync("store-upgrade", "local");
        await using var oldCluster = old.Cluster;
        await old.Cluster.SqlAsync("insert into t select g, 'before the backup' from generate_series(2001, 2100) g");
        var oldBackup = await BackupRestoreTests.BackupAsync(old);
        await old.Cluster.SqlAsync(Rows);
        var oldExpected = await old.Cluster.SqlAsync(BackupRestoreTests.TableHash);
        var oldSystem = await old.Cluster.SqlAsync("select system_identifier from pg_control_system()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(old.Cluster);
        await old.Cluster.StopAsync();

        // The upgraded cluster: 17, the same rows, archiving into the same store with the same command.
        await using var cluster = await PgCluster.InitWithAsync(PgVersions.BinDir(17), Path.Combine(old.Work, "new"), [],
            ["archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p {old.Store.Args}'"]);
        await cluster.StartAsync();
        var upgraded = new BackupRestoreTests.Source(old.Work, old.Store, cluster);
        await cluster.SqlAsync("create table t (id int primary key, note text)");
        await cluster.SqlAsync("insert into t select g, 'before the backup' from generate_series(2001, 2100) g");
        await cluster.SqlAsync(Rows);
        Assert.Equal(oldExpected, await cluster.SqlAsync(BackupRestoreTests.TableHash));
        var newSystem = await cluster.SqlAsync("select system_identifier from pg_control_system()");
        Assert.NotEqual(oldSystem, newSystem);

        // Its first segment has the name of one the old cluster archived: refused, naming the way out, until store-upgrade.
        await cluster.SqlAsync("select pg_switch_wal()");
        string failures = "0";
        for (var i = 0; i < 100 && failures == "0"; i++)
        {
            await Task.Delay(200);
            failures = await cluster.SqlAsync("select failed_count from pg_stat_archiver");
        }
        Assert.NotEqual("0", failures);
        Assert.Contains("store-upgrade --pgdata", cluster.ServerLog);

        var upgrade = await BackupRestoreTests.CloudArchiveAsPostgres(upgraded, "store-upgrade", "--pgdata", cluster.DataDir);
        Assert.True(upgrade.ExitCode == 0, upgrade.ToString());
        Assert.Contains($"database system {newSystem} (PostgreSQL 17)", upgrade.Stdout);
        var again = await BackupRestoreTests.CloudArchiveAsPostgres(upgraded, "store-upgrade", "--pgdata", cluster.DataDir);
        Assert.Contains("already has its history", again.Stdout);
        // The old cluster is not an upgrade of itself.
        var self = await BackupRestoreTests.CloudArchiveAsPostgres(old, "store-upgrade", "--pgdata", old.Cluster.DataDir);
        Assert.Contains("nothing to upgrade", Expect.OneLineError(self, 2));

        // Archiving resumes; a backup of the new cluster, more rows, the end of its archive.
        await cluster.SqlAsync("insert into t values (2999, 'after store-upgrade')");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(cluster);
        var newBackup = await BackupRestoreTests.BackupAsync(upgraded);
        await cluster.SqlAsync("insert into t select g, 'on 17' from generate_series(3001, 3500) g");
        var newExpected = await cluster.SqlAsync(BackupRestoreTests.TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(cluster);
        await cluster.StopAsync();

        Assert.Contains("positive number", Expect.OneLineError(await BackupRestoreTests.CloudArchiveAsPostgres(upgraded, "backup-list", "--system-id", "x1"), 2));
        var list = await BackupRestoreTests.CloudArchiveAsPostgres(upgraded, "backup-list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains($"database system {newSystem}:", list.Stdout);
        Assert.Contains($"database system {oldSystem}:", list.Stdout);
        Assert.True(list.Stdout.IndexOf(newBackup, StringComparison.Ordinal) < list.Stdout.IndexOf(oldBackup, StringComparison.Ordinal), list.Stdout);

        // The newest history by default: the 17 cluster to the end of its archive.
        await using (var restoredNew = await BackupRestoreTests.RestoreAndStartAsync(upgraded, "restored-new", []))
        {
            Assert.Equal(newExpected, await restoredNew.SqlAsync(BackupRestoreTests.TableHash));
            Assert.Equal("17", await restoredNew.SqlAsync("select current_setting('server_version_num')::int / 10000"));
        }
        // The old cluster's history, named: its backup, replayed to the end of its own WAL with 15's binaries.
        await using var restoredOld = await BackupRestoreTests.RestoreAndStartAsync(old, "restored-old", ["--system-id", oldSystem]);
        Assert.Equal(oldExpected, await restoredOld.SqlAsync(BackupRestoreTests.TableHash));
        Assert.Equal("15", await restoredOld.SqlAsync("select current_setting('server_version_num')::int / 10000"));
    }
}
