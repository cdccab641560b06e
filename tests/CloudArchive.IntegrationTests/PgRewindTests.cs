namespace CloudArchive.IntegrationTests;

/// <summary>
/// The spool lives in pg_wal/.cloudarchive. pg_rewind removes and copies files across the whole data directory, and
/// fails half-way on a file that changes under it (WAL-G's prefetch directory did that). After a failover, the old
/// primary, with an async push spool, is rewound with its own restore_command (prefetch on) fetching the WAL it
/// lacks, and follows the new primary.
/// </summary>
public sealed class PgRewindTests
{
    private const string Rows = "select count(*) || ':' || md5(string_agg(id || '=' || note, ',' order by id)) from t";

    [Fact]
    public async Task AnOldPrimaryWithASpoolIsRewoundUsingTheArchiveAndFollowsTheNewOne()
    {
        var work = TestEnv.NewWorkDir("rewind");
        var store = TestStore.Create("local", work);
        await using var old = await PgCluster.InitAsync(Path.Combine(work, "old"),
            "archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p --async {store.Args}'",
            $"restore_command = '{TestEnv.Binary} wal-fetch %f %p --prefetch 4 --log-level info {store.Args}'", "wal_log_hints = on");
        await old.StartAsync();
        await old.SqlAsync("create table t (id int primary key, note text); insert into t select g, 'common ' || g from generate_series(1, 1000) g");

        // A streaming standby, promoted: the failover.
        var newDir = TestEnv.SharedDir(work, "new");
        await Proc.CheckAsync(old.RunToolAsync("pg_basebackup", "-D", Path.Combine(newDir, "data"), "-R", "-X", "stream", "-c", "fast"));
        await using var primary = await PgCluster.AdoptAsync(newDir);
        await primary.StartAsync();
        await WaitForAsync(async () => await primary.SqlAsync("select count(*) from t") == "1000", "the standby to catch up");
        await primary.SqlAsync("select pg_promote()");
        await WaitForAsync(async () => await primary.SqlAsync("select pg_is_in_recovery()") == "f", "the promotion");
        await primary.SqlAsync("insert into t select g, 'after failover ' || g from generate_series(1001, 1100) g");

        // The old primary goes on for a while (diverges), archiving through its async spool, then stops.
        for (var i = 0; i < 3; i++)
            await old.SqlAsync($"insert into t select g, 'lost ' || g from generate_series({5000 + i * 1000}, {5999 + i * 1000}) g; select pg_switch_wal();");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(old);
        await old.StopAsync();
        var pgWal = Path.Combine(old.DataDir, "pg_wal");
        Assert.True(Directory.Exists(Path.Combine(pgWal, ".cloudarchive", "push")), "the async push spool is not there to be tested");
        // Its archived segments are gone from pg_wal: pg_rewind must get them through restore_command.
        foreach (var done in Directory.GetFiles(Path.Combine(pgWal, "archive_status"), "*.done"))
        {
            var segment = Path.Combine(pgWal, Path.GetFileNameWithoutExtension(done));
            if (Path.GetFileName(segment).Length == 24 && File.Exists(segment)) File.Delete(segment);
        }

        var rewind = await Proc.AsPostgresAsync(["pg_rewind", "-D", old.DataDir, "--restore-target-wal", "-R",
            "--source-server", $"host={primary.Dir} port={primary.Port} user=postgres dbname=postgres"], timeout: TimeSpan.FromMinutes(5));

        Assert.True(rewind.ExitCode == 0, rewind.ToString());
        // pg_rewind fetched what it lacked through restore_command, which left the prefetch spool alone meanwhile.
        Assert.Contains("run by pg_rewind: fetching directly, without the prefetch spool", rewind.Stderr);
        // pg_rewind copied the new primary's configuration: this server keeps its own port and socket.
        await old.AppendConfAsync([$"port = {old.Port}", $"unix_socket_directories = '{old.Dir}'"]);
        await primary.SqlAsync("insert into t select g, 'after rewind ' || g from generate_series(1101, 1200) g");
        var expected = await primary.SqlAsync(Rows);
        await old.StartAsync();
        await WaitForAsync(async () => await old.SqlAsync(Rows) == expected, "the rewound server to follow the new primary");
        Assert.Equal("0", await old.SqlAsync("select count(*) from t where note like 'lost%'"));
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting for " + what);
            await Task.Delay(100);
        }
    }
}
