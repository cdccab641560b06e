namespace CloudArchive.IntegrationTests;

/// <summary>
/// The proof of the WAL foundation: a real cluster archives through `cloudarchive wal-push`, is thrown away,
/// and comes back from a base backup plus `cloudarchive wal-fetch` at a named restore point.
/// </summary>
public sealed class PointInTimeRecoveryTests
{
    private const string TableHash = "select count(*) || ':' || md5(coalesce(string_agg(id || '=' || note, ',' order by id), '')) from t";
    private const string AccountsHash = "select count(*) || ':' || md5(string_agg(aid || '=' || abalance, ',' order by aid)) from pgbench_accounts";

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task RecoversToNamedRestorePoint(string storeKind)
    {
        var work = TestEnv.NewWorkDir("pitr-" + storeKind);
        var store = TestStore.Create(storeKind, work);
        await using var source = await PgCluster.InitAsync(Path.Combine(work, "source"),
            "archive_mode = on",
            $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args}'");
        await source.StartAsync();

        await source.SqlAsync("create table t (id int primary key, note text)");
        await Proc.CheckAsync(source.RunToolAsync("pgbench", "-i", "-q", "-s", "4", "postgres"));
        var backupDir = TestEnv.SharedDir(work, "restored");
        // -X none: the backup holds no WAL of its own, so reaching consistency needs restore_command.
        await Proc.CheckAsync(source.RunToolAsync("pg_basebackup", "-D", Path.Combine(backupDir, "data"), "-X", "none", "-c", "fast"));

        await Proc.CheckAsync(source.RunToolAsync("pgbench", "-n", "-t", "300", "-c", "2", "postgres"));
        await source.SqlAsync("insert into t select g, 'before ' || g from generate_series(1, 100) g");
        var expectedTable = await source.SqlAsync(TableHash);
        var expectedAccounts = await source.SqlAsync(AccountsHash);
        await source.SqlAsync("select pg_create_restore_point('before_more')");

        await source.SqlAsync("insert into t select g, 'after ' || g from generate_series(101, 200) g");
        await Proc.CheckAsync(source.RunToolAsync("pgbench", "-n", "-t", "300", "-c", "2", "postgres"));
        Assert.NotEqual(expectedAccounts, await source.SqlAsync(AccountsHash));
        await WaitForArchiveAsync(source);
        await source.StopAsync();
        Directory.Delete(source.DataDir, recursive: true);

        await using var restored = await PgCluster.AdoptAsync(backupDir,
            $"restore_command = '{TestEnv.Binary} wal-fetch %f %p {store.Args}'",
            "recovery_target_name = 'before_more'",
            "recovery_target_action = 'promote'");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", Path.Combine(restored.DataDir, "recovery.signal")]));
        await restored.StartAsync();
        await WaitUntilPromotedAsync(restored);

        Assert.Equal(expectedTable, await restored.SqlAsync(TableHash));
        Assert.Equal(expectedAccounts, await restored.SqlAsync(AccountsHash));
        Assert.Equal("0", await restored.SqlAsync("select count(*) from t where note like 'after%'"));
        Assert.Contains("recovery stopping at restore point \"before_more\"", restored.ServerLog);
        Assert.Contains("restored log file", restored.ServerLog);
        Secrets.AssertNoneIn(source.ServerLog + restored.ServerLog);
    }

    [Fact]
    public async Task UnreachableStoreStopsRecoveryInsteadOfPromotingEarly()
    {
        var work = TestEnv.NewWorkDir("pitr-down");
        var storeDir = Path.Combine(work, "store");
        var store = "file://" + storeDir;
        var (backupDir, expected) = await BackupThenThreeSegmentsAsync(work, new LocalStore(storeDir), 20000, "repeat('x', 500)");

        // The store's volume "is not mounted" while the server recovers: its mount point is an empty directory.
        Directory.Move(storeDir, storeDir + ".away");
        LocalStore.MakeDirectory(storeDir, init: false);
        await using var restored = await PgCluster.AdoptAsync(backupDir,
            $"restore_command = '{TestEnv.Binary} wal-fetch %f %p --store {store} --retry-timeout 1'",
            "recovery_target_action = 'promote'");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", Path.Combine(restored.DataDir, "recovery.signal")]));

        var refused = await restored.TryStartAsync();

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("exit code 200", restored.ServerLog);
        Assert.DoesNotContain("selected new timeline ID", restored.ServerLog);
        Assert.True(File.Exists(Path.Combine(restored.DataDir, "recovery.signal")), "recovery must not have ended");

        Directory.Delete(storeDir);
        Directory.Move(storeDir + ".away", storeDir);
        await restored.StartAsync();
        await WaitUntilPromotedAsync(restored);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    /// <summary>
    /// A segment and its record removed from the store (by someone who can write to it), later ones still there: recovery
    /// stops at the hole (wal-fetch exits 200) instead of promoting there as if the archive ended, and goes on to the end
    /// once the segment is back.
    /// </summary>
    [Fact]
    public async Task AHoleInTheArchiveStopsRecoveryInsteadOfEndingIt()
    {
        var work = TestEnv.NewWorkDir("pitr-hole");
        var store = new LocalStore(Path.Combine(work, "store"));
        var (backupDir, expected) = await BackupThenThreeSegmentsAsync(work, store, 1000, "'row ' || g");
        var segments = Directory.GetFiles(Path.Combine(store.Dir, "manifest", "wal", "00000001"), "*.json")
            .Select(f => Path.GetFileNameWithoutExtension(f)).Where(n => n.Length == 24).Order(StringComparer.Ordinal).ToList();
        var hole = segments[^3];
        File.Move(store.ObjectPath(hole), Path.Combine(work, "object.away"));
        File.Move(store.RecordPath(hole), Path.Combine(work, "record.away"));

        await using var restored = await PgCluster.AdoptAsync(backupDir,
            $"restore_command = '{TestEnv.Binary} wal-fetch %f %p --store {store.Url}'",
            "recovery_target_action = 'promote'");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", Path.Combine(restored.DataDir, "recovery.signal")]));
        var refused = await restored.TryStartAsync();

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains($"the archive has a gap: {hole}", restored.ServerLog);
        Assert.Contains("exit code 200", restored.ServerLog);
        Assert.DoesNotContain("selected new timeline ID", restored.ServerLog);
        Assert.True(File.Exists(Path.Combine(restored.DataDir, "recovery.signal")), "recovery must not have ended");

        File.Move(Path.Combine(work, "object.away"), store.ObjectPath(hole));
        File.Move(Path.Combine(work, "record.away"), store.RecordPath(hole));
        await restored.StartAsync();
        await WaitUntilPromotedAsync(restored);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    /// <summary>
    /// A cluster archiving to <paramref name="store"/>, a pg_basebackup without WAL (-X none: consistency needs the archive),
    /// then three batches of rows, each ending its segment; the cluster is stopped. Returns the backup and the table's hash.
    /// </summary>
    private static async Task<(string BackupDir, string Expected)> BackupThenThreeSegmentsAsync(string work, LocalStore store, int rows, string note)
    {
        await using var source = await PgCluster.InitAsync(Path.Combine(work, "source"),
            "archive_mode = on",
            $"archive_command = '{TestEnv.Binary} wal-push %p --store {store.Url}'");
        await source.StartAsync();
        await source.SqlAsync("create table t (id int primary key, note text)");
        var backupDir = TestEnv.SharedDir(work, "restored");
        await Proc.CheckAsync(source.RunToolAsync("pg_basebackup", "-D", Path.Combine(backupDir, "data"), "-X", "none", "-c", "fast"));
        for (var batch = 0; batch < 3; batch++)
        {
            await source.SqlAsync($"insert into t select g, {note} from generate_series({batch * rows + 1}, {(batch + 1) * rows}) g");
            await source.SqlAsync("select pg_switch_wal()");
        }
        var expected = await source.SqlAsync(TableHash);
        await WaitForArchiveAsync(source);
        await source.StopAsync();
        return (backupDir, expected);
    }

    /// <summary>Switches to a new segment and waits until the archiver has pushed everything up to it.</summary>
    internal static async Task WaitForArchiveAsync(PgCluster cluster)
    {
        var last = await cluster.SqlAsync("select pg_walfile_name(pg_switch_wal())");
        for (var i = 0; i < 600; i++)
        {
            var archived = await cluster.SqlAsync("select coalesce(last_archived_wal, '') from pg_stat_archiver");
            if (string.CompareOrdinal(archived, last) >= 0) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"segment {last} was not archived in 60 s:\n{cluster.ServerLog}");
    }

    internal static async Task WaitUntilPromotedAsync(PgCluster cluster)
    {
        for (var i = 0; i < 1200; i++)
        {
            if (await cluster.SqlAsync("select pg_is_in_recovery()") == "f") return;
            await Task.Delay(100);
        }
        throw new TimeoutException("the restored server did not finish recovery in 120 s:\n" + cluster.ServerLog);
    }
}
