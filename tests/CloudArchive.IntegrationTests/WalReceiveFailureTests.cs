using Xunit.Abstractions;
using static CloudArchive.IntegrationTests.BackupRestoreTests;
using static CloudArchive.IntegrationTests.Receiving;

namespace CloudArchive.IntegrationTests;

/// <summary>wal-receive when things fail or lag: the store down past its retry budget, an asynchronous receiver's loss.</summary>
public sealed class WalReceiveFailureTests(ITestOutputHelper output)
{
    /// <summary>
    /// The store down for longer than its retry budget while a synchronous receiver runs: a commit made meanwhile waits
    /// (it is not acknowledged without the store), the receiver starts again from what the store holds once it is back,
    /// and after SIGKILL of the primary every committed row restores.
    /// </summary>
    [Fact]
    public async Task AStoreDownForLongerThanItsRetryBudgetHoldsCommitsBackAndLosesNothing()
    {
        var work = TestEnv.NewWorkDir("receive-store-down");
        await using var proxy = new FaultProxy(TestStore.S3Endpoint, []);
        var store = TestStore.Create("s3", work, endpoint: proxy.Url);
        var cluster = await PgCluster.InitAsync(Path.Combine(work, "source"), "archive_mode = on",
            $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args}'");
        await using var _ = cluster;
        await cluster.StartAsync();
        var s = new Source(work, store, cluster);
        await cluster.SqlAsync("create table t (id int primary key, note text)");
        await cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 50) g");
        await BackupAsync(s);
        // A retry budget of 5 s (the store config's is 20): the outage below lasts past it.
        await using var receiver = new Receiver(s, Conninfo(cluster), "--create-slot", "--synchronous", "--retry-timeout", "5");
        await WaitForAsync(async () => await cluster.SqlAsync("select count(*) from pg_stat_replication where flush_lsn is not null") == "1",
            "the receiver streaming", () => receiver.Log);
        await cluster.SqlAsync("alter system set synchronous_standby_names = 'cloudarchive'");
        await cluster.SqlAsync("select pg_reload_conf()");
        await cluster.SqlAsync("insert into t values (51, 'before the outage')");

        proxy.Down = true;
        var held = cluster.SqlAsync("insert into t values (52, 'committed during the outage')");
        await Task.Delay(TimeSpan.FromSeconds(12));
        Assert.False(held.IsCompleted, "a commit returned while the store was down");
        proxy.Down = false;
        await held.WaitAsync(TimeSpan.FromSeconds(90));
        await cluster.SqlAsync("insert into t values (53, 'after the outage')");
        var expected = await cluster.SqlAsync(TableHash);
        await KillWithSigkillAsync(cluster);
        Directory.Delete(cluster.DataDir, recursive: true);
        Assert.Equal(0, await receiver.StopAsync());
        output.WriteLine(receiver.Log);
        Assert.Contains("starting again", receiver.Log);

        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    /// <summary>
    /// Asynchronous: rows committed while the receiver stores every second; the primary killed. What is lost is at most
    /// what was committed in the last flush interval (and a margin for the store's round trip), measured and printed.
    /// </summary>
    [Fact]
    public async Task AnAsynchronousReceiverLosesAtMostItsFlushInterval()
    {
        var s = await StartSourceAsync("receive-async");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("alter table t add column at timestamptz default clock_timestamp()");
        await BackupAsync(s);
        await using var receiver = new Receiver(s, Conninfo(s.Cluster), "--create-slot", "--flush-interval", "1");
        await WaitForAsync(async () => await s.Cluster.SqlAsync("select count(*) from pg_stat_replication where flush_lsn is not null") == "1",
            "the receiver streaming", () => receiver.Log);
        for (var id = 1; id <= 80; id++)
        {
            await s.Cluster.SqlAsync($"insert into t (id, note) values ({id}, 'async {id}')");
            // Segments ended early by a switch, archived by archive_command and stored by the receiver alike.
            if (id % 30 == 0) await s.Cluster.SqlAsync("select pg_switch_wal()");
            await Task.Delay(50);
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await WaitForAsync(() => Task.FromResult(receiver.Log.Contains("already archived: the same bytes") || s.Cluster.ServerLog.Contains(
            "already archived with identical content")), "a switched segment stored by both", () => receiver.Log);
        Assert.Equal("0", await s.Cluster.SqlAsync("select failed_count from pg_stat_archiver"));
        var killedAt = DateTimeOffset.Parse(await s.Cluster.SqlAsync("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.USZ')"));
        await KillWithSigkillAsync(s.Cluster);
        Directory.Delete(s.Cluster.DataDir, recursive: true);
        Assert.Equal(0, await receiver.StopAsync());

        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        var kept = int.Parse(await restored.SqlAsync("select count(*) from t"));
        var newest = DateTimeOffset.Parse(await restored.SqlAsync("select to_char(max(at) at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.USZ') from t"));
        var loss = killedAt - newest;
        output.WriteLine($"kept {kept} of 80 rows; the newest restored commit is {loss.TotalMilliseconds:0} ms before the kill (flush interval 1000 ms)");
        Assert.True(loss < TimeSpan.FromSeconds(2.5), $"lost {loss.TotalMilliseconds:0} ms of commits with a 1 s flush interval; kept {kept} rows\n{receiver.Log}");
        // Rows are kept in commit order: no hole.
        Assert.Equal(kept.ToString(), await restored.SqlAsync("select max(id) from t"));
    }

}
