using Xunit.Abstractions;
using static CloudArchive.IntegrationTests.BackupRestoreTests;
using static CloudArchive.IntegrationTests.Receiving;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// The proof of zero data loss, on every store and on PostgreSQL 15 and 18 between them (a class of its own, so that it runs beside
/// the other receiver tests).
/// </summary>
public sealed class WalReceiveSyncTests(ITestOutputHelper output)
{
    /// <summary>
    /// The proof of zero data loss: the receiver in synchronous mode, listed in synchronous_standby_names; rows committed
    /// one by one; the primary killed with SIGKILL and its data directory deleted. A restore from the store to the end of
    /// the archive (the base backup, the archived segments, the streamed prefix of the segment in progress) has every row
    /// whose commit returned.
    /// </summary>
    [Theory]
    // Every store, and both majors (their replication protocols differ), each once: store and major do not meet in the
    // receiver's code, and three more cases of 30 s each would prove no more.
    [InlineData("local", 18)]
    [InlineData("s3", 15)]
    [InlineData("azure", 18)]
    public async Task EveryCommitThatReturnedUnderASynchronousReceiverSurvivesThePrimaryKilledAndItsDataDirectoryDeleted(string storeKind, int major)
    {
        var bin = major == 15 ? null : PgVersions.BinDir(major);
        var s = await StartSourceWithAsync(bin, [], $"receive-sync-{storeKind}-{major}", storeKind);
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 100) g");
        await BackupAsync(s);

        await using var receiver = new Receiver(s, Conninfo(s.Cluster), "--create-slot", "--synchronous");
        await WaitForAsync(async () => await s.Cluster.SqlAsync(
            "select count(*) from pg_stat_replication where application_name = 'cloudarchive' and flush_lsn is not null") == "1",
            "the receiver streaming", () => receiver.Log);
        await s.Cluster.SqlAsync("alter system set synchronous_standby_names = 'cloudarchive'");
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        await WaitForAsync(async () => await s.Cluster.SqlAsync("select sync_state from pg_stat_replication") == "sync", "a synchronous receiver",
            () => receiver.Log);
        // The store is what the server waits for: the apply position is never reported, so remote_apply would wait for ever.
        Assert.Equal("", await s.Cluster.SqlAsync("select coalesce(replay_lsn::text, '') from pg_stat_replication"));

        var returned = 0;
        for (var id = 101; id <= 160; id++)
        {
            await s.Cluster.SqlAsync($"insert into t values ({id}, 'committed one by one {id}')");
            returned = id;
        }
        var expected = await s.Cluster.SqlAsync(TableHash);
        await KillWithSigkillAsync(s.Cluster);
        Directory.Delete(s.Cluster.DataDir, recursive: true);
        Assert.Equal(0, await receiver.StopAsync());
        output.WriteLine(receiver.Log);
        Assert.Contains("wal-receive: stopped; the store holds the WAL up to", receiver.Log);
        Secrets.AssertNoneIn(receiver.Log);

        // How far the archive reaches, past its last whole segment: plan and status say it.
        var plan = await CloudArchiveAsPostgres(s, "plan");
        Assert.Contains("streamed by wal-receive", plan.Stdout);
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Contains("streamed       timeline 1: up to LSN", status.Stdout);
        Assert.Matches("cloudarchive_wal_streamed_lsn_bytes\\{store=\"[^\"]+\",timeline=\"1\"\\} [1-9]", (await CloudArchiveAsPostgres(s, "metrics")).Stdout);

        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        Assert.Equal(returned.ToString(), await restored.SqlAsync("select max(id) from t"));
    }

}
