namespace CloudArchive.IntegrationTests;

/// <summary>
/// Where each PostgreSQL major's server binaries are: CLOUDARCHIVE_TEST_PGnn_BIN, from the pg-versions.env that
/// infra/pg-versions.sh writes and infra/test.sh exports. A missing one fails the test: CI must run every major.
/// </summary>
public static class PgVersions
{
    public static string BinDir(int major)
    {
        var variable = $"CLOUDARCHIVE_TEST_PG{major}_BIN";
        var dir = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrEmpty(dir) || !File.Exists(Path.Combine(dir, "postgres")))
            throw new InvalidOperationException(
                $"{variable} must name the PostgreSQL {major} server binaries (got '{dir}'): run the tests with infra/test.sh, which installs them (infra/pg-versions.sh) and exports $CLOUDARCHIVE_TEST_DIR/pg-versions.env");
        return dir;
    }
}

/// <summary>
/// The proof a supported major must pass, on its own server binaries (client programs stay Debian's 15): WAL archived
/// by wal-push under pgbench, a backup-push taken under load of a cluster with a tablespace (moved by each restore),
/// a restore to a time between two batches of rows with wal-fetch --prefetch, the restored server promoted to
/// timeline 2 archiving there, and a second restore of the same backup that follows timeline 2 to the end of the
/// archive. Each restore is started and its rows compared.
/// </summary>
internal static class VersionScenario
{
    private const string FarRows = "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' order by id)) from far_rows";

    private static string[] MoveTablespace(BackupRestoreTests.Source s, string from, string restore) =>
        ["--tablespace-map", $"{from}={Path.Combine(s.Work, "ts-" + restore)}"];

    public static async Task RunAsync(int major, params string[] initdbArgs)
    {
        var s = await BackupRestoreTests.StartSourceWithAsync(PgVersions.BinDir(major), initdbArgs, $"pg{major}", "local");
        await using var _ = s.Cluster;
        Assert.Equal(major.ToString(), await s.Cluster.SqlAsync("select current_setting('server_version_num')::int / 10000"));
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "1", "postgres"));
        // A tablespace: its map comes from the backup functions, which differ before 15.
        var tablespace = Path.Combine(s.Work, "ts");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", tablespace]));
        await s.Cluster.SqlAsync($"create tablespace far location '{tablespace}'");
        await s.Cluster.SqlAsync("create table far_rows (id int, v text) tablespace far; insert into far_rows select g, md5(g::text) from generate_series(1, 1000) g");

        var load = s.Cluster.RunToolAsync("pgbench", "-n", "-T", "3", "-c", "2", "postgres");
        await Task.Delay(300);
        var backup = await BackupRestoreTests.BackupAsync(s);
        await Proc.CheckAsync(load);
        // An incremental on top, on this major, after rows changed in the tablespace: the restore to the target below
        // comes from the chain of both.
        await s.Cluster.SqlAsync("insert into far_rows select g, 'after the backup' from generate_series(1001, 1500) g");
        var (incr, _) = await IncrementalBackupTests.BackupOfTypeAsync(s, "incr");
        // Segments between the backups and the target, for the prefetcher to fetch ahead.
        for (var i = 0; i < 4; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'wanted ' || g from generate_series({i * 500 + 1}, {(i + 1) * 500}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        var expectedFar = await s.Cluster.SqlAsync(FarRows);
        var (target, expectedTable, expectedAccounts) = await BackupRestoreTests.MarkTargetTimeAndMoveOnAsync(s);
        var plan = await BackupRestoreTests.CloudArchiveAsPostgres(s, "plan", "--target-time", target);
        Assert.Contains($"chain        incr {incr} <- full {backup}", plan.Stdout);

        string onTimeline2;
        await using (var first = await BackupRestoreTests.RestoreAndStartAsync(s, "first", ["--target-time", target, .. MoveTablespace(s, tablespace, "first")], archive: true, prefetch: 4))
        {
            Assert.Equal(expectedFar, await first.SqlAsync(FarRows));
            Assert.Equal(Path.Combine(s.Work, "ts-first"), await first.SqlAsync("select pg_tablespace_location(oid) from pg_tablespace where spcname = 'far'"));
            Assert.Equal(major.ToString(), await first.SqlAsync("select current_setting('server_version_num')::int / 10000"));
            Assert.Equal(expectedTable, await first.SqlAsync(BackupRestoreTests.TableHash));
            Assert.Equal(expectedAccounts, await first.SqlAsync(BackupRestoreTests.AccountsHash));
            Assert.Equal("0", await first.SqlAsync("select count(*) from t where note like 'unwanted%'"));
            Assert.Contains("from the prefetch spool", first.ServerLog);
            Assert.Equal("00000002", await first.SqlAsync("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"));
            await first.SqlAsync("insert into t select g, 'timeline 2 ' || g from generate_series(10001, 10500) g");
            onTimeline2 = await first.SqlAsync(BackupRestoreTests.TableHash);
            await PointInTimeRecoveryTests.WaitForArchiveAsync(first);
            await first.StopAsync();
        }

        await using var second = await BackupRestoreTests.RestoreAndStartAsync(s, "second", ["--backup", backup, .. MoveTablespace(s, tablespace, "second")], prefetch: 4);
        Assert.Equal(expectedFar, await second.SqlAsync(FarRows));
        Assert.Equal(onTimeline2, await second.SqlAsync(BackupRestoreTests.TableHash));
        Assert.Equal("500", await second.SqlAsync("select count(*) from t where note like 'timeline 2 %'"));
        Assert.Equal("0", await second.SqlAsync("select count(*) from t where note like 'unwanted%'"));
        Secrets.AssertNoneIn(s.Cluster.ServerLog + second.ServerLog);

        // A drill of the archive: a server of this major from its own binaries, the tablespace inside the drill's directory.
        var drills = Path.Combine(s.Work, "drills");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", drills]));
        var drill = await BackupRestoreTests.CloudArchiveAsPostgres(s, "drill", "--drill-dir", drills, "--drill-pg-bin", PgVersions.BinDir(major),
            "--check", $"select ({BackupRestoreTests.TableHash}) = '{onTimeline2}'",
            "--check", $"select ({FarRows}) = '{expectedFar}' and current_setting('server_version_num')::int / 10000 = {major}");
        Assert.True(drill.ExitCode == 0, drill.ToString());
        Assert.Contains(": PASSED", drill.Stdout);
        Assert.Empty(Directory.GetFileSystemEntries(drills));
    }
}

public sealed class PostgreSql13Tests
{
    [Fact]
    public Task ArchivesBacksUpAndRecoversToATimeAcrossTimelines() => VersionScenario.RunAsync(13);
}

public sealed class PostgreSql14Tests
{
    [Fact]
    public Task ArchivesBacksUpAndRecoversToATimeAcrossTimelines() => VersionScenario.RunAsync(14);
}

public sealed class PostgreSql16Tests
{
    [Fact]
    public Task ArchivesBacksUpAndRecoversToATimeAcrossTimelines() => VersionScenario.RunAsync(16);
}

public sealed class PostgreSql17Tests
{
    [Fact]
    public Task ArchivesBacksUpAndRecoversToATimeAcrossTimelines() => VersionScenario.RunAsync(17);
}

public sealed class PostgreSql18Tests
{
    [Fact]
    public Task ArchivesBacksUpAndRecoversToATimeAcrossTimelines() => VersionScenario.RunAsync(18);
}

/// <summary>WAL segments of 1 and 64 MiB (initdb --wal-segsize) are archived, backed up and restored like 16 MiB ones.</summary>
public sealed class WalSegmentSizeTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    public Task ArchivesBacksUpAndRecoversWithOtherSegmentSizes(int megabytes) => VersionScenario.RunAsync(17, "--wal-segsize", megabytes.ToString());
}
