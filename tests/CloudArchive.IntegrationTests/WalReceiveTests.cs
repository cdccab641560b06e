using Xunit.Abstractions;
using static CloudArchive.IntegrationTests.BackupRestoreTests;
using static CloudArchive.IntegrationTests.Receiving;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// wal-receive against real servers and stores: a promotion while it is behind is followed (the old timeline to its end,
/// then the new one) beside the new primary's archive_command; a gap the server cannot fill is reported; bad input is
/// refused before anything connects. The proof of zero data loss: <see cref="WalReceiveSyncTests"/>; failures:
/// <see cref="WalReceiveFailureTests"/>.
/// </summary>
public sealed class WalReceiveTests(ITestOutputHelper output)
{
    /// <summary>
    /// A promotion while the receiver is behind: it was stopped, the primary committed more (its standby got it), the
    /// primary stopped and the standby was promoted. Pointed at the new primary, the receiver streams the old timeline
    /// to its end (PostgreSQL ends it with CopyDone), then the new one, with the history file, beside the new primary's
    /// archive_command (its .partial and the same history file: no conflict); the restore to the end of the archive has
    /// every row of both timelines.
    /// </summary>
    [Fact]
    public async Task APromotionWhileTheReceiverIsBehindIsFollowedOldTimelineToItsEndThenTheNewOne()
    {
        var s = await StartSourceAsync("receive-promotion", "local", "wal_keep_size = '256MB'");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 100) g");
        await BackupAsync(s);
        var standbyDir = TestEnv.SharedDir(s.Work, "standby");
        var made = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(standbyDir, "data"), "--standby", "--primary-conninfo", Conninfo(s.Cluster));
        Assert.True(made.ExitCode == 0, made.ToString());
        // archive_command on the standby too: at its promotion it archives the old timeline's last segment as .partial and the
        // new history file, beside the receiver's pieces and its copy of the same history file.
        await using var standby = await PgCluster.AdoptAsync(standbyDir, "archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args}'",
            "hot_standby = on");
        await standby.StartAsync();

        await using (var first = new Receiver(s, Conninfo(s.Cluster), "--create-slot", "--flush-interval", "1"))
        {
            await s.Cluster.SqlAsync("insert into t select g, 'timeline 1, streamed ' || g from generate_series(101, 200) g");
            var end = await s.Cluster.SqlAsync("select pg_current_wal_lsn()");
            await WaitForAsync(async () => await s.Cluster.SqlAsync($"select flush_lsn >= '{end}' from pg_stat_replication where application_name = 'cloudarchive'") == "t",
                "the receiver storing timeline 1", () => first.Log);
            Assert.Equal(0, await first.StopAsync());
        }
        // Behind: rows on timeline 1 that only the standby has (the primary's archiving fails from here on), then the primary
        // crashes (no shut-down switch: timeline 1 ends inside a segment, which the standby archives as .partial).
        await s.Cluster.SqlAsync("alter system set archive_command = 'false'");
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        await s.Cluster.SqlAsync("insert into t select g, 'timeline 1, not yet received ' || g from generate_series(201, 300) g");
        var primaryEnd = await s.Cluster.SqlAsync("select pg_current_wal_lsn()");
        await WaitForAsync(async () => await standby.SqlAsync($"select pg_last_wal_replay_lsn() >= '{primaryEnd}'") == "t", "the standby catching up",
            () => standby.ServerLog);
        await s.Cluster.StopAsync("immediate");
        await standby.SqlAsync("select pg_promote()");
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(standby);
        // No switch yet: the new primary's archive_command has archived only the old timeline's .partial and the history file,
        // so the store's end of timeline 1 is the receiver's own, before the switch point.
        await standby.SqlAsync("insert into t select g, 'timeline 2 ' || g from generate_series(301, 400) g");

        await using (var second = new Receiver(s, Conninfo(standby), "--create-slot", "--flush-interval", "1"))
        {
            var caughtUp = await standby.SqlAsync("select pg_current_wal_lsn()");
            await WaitForAsync(async () => await standby.SqlAsync(
                $"select coalesce(bool_or(flush_lsn >= '{caughtUp}'), false) from pg_stat_replication where application_name = 'cloudarchive'") == "t",
                "the receiver catching up", () => second.Log);
            await standby.SqlAsync("select pg_switch_wal()");
            await standby.SqlAsync("insert into t select g, 'timeline 2, in progress ' || g from generate_series(401, 420) g");
            var newEnd = await standby.SqlAsync("select pg_current_wal_lsn()");
            await WaitForAsync(async () => await standby.SqlAsync(
                $"select coalesce(bool_or(flush_lsn >= '{newEnd}'), false) from pg_stat_replication where application_name = 'cloudarchive'") == "t",
                "the receiver storing timeline 2", () => second.Log);
            Assert.Equal(0, await second.StopAsync());
            output.WriteLine(second.Log);
            Assert.Contains("ended the stream of timeline 1", second.Log);
            Assert.Contains("streaming timeline 2", second.Log);
        }
        var expected = await standby.SqlAsync(TableHash);
        Assert.True(File.Exists(Path.Combine(new Uri(s.Store.Url).LocalPath, "wal", "00000002", "00000002.history.zst")));
        await PointInTimeRecoveryTests.WaitForArchiveAsync(standby);
        Assert.Equal("0", await standby.SqlAsync("select failed_count from pg_stat_archiver"));
        Assert.Contains(Directory.EnumerateFiles(Path.Combine(new Uri(s.Store.Url).LocalPath, "wal", "00000001")), f => f.EndsWith(".partial.zst"));
        await standby.StopAsync();

        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    /// <summary>
    /// A gap the receiver cannot fill: the store ends at a segment the server has since removed (archiving was off for a
    /// while). It is said, exit 5, naming where the archive ends, and nothing is streamed past the hole.
    /// </summary>
    [Fact]
    public async Task AGapTheServerCannotFillIsReportedNotStreamedOver()
    {
        var s = await StartSourceAsync("receive-gap", "local", "wal_keep_size = 0", "max_wal_size = '32MB'", "min_wal_size = '32MB'");
        await using var _ = s.Cluster;
        await BackupAsync(s);
        await s.Cluster.StopAsync();
        await s.Cluster.AppendConfAsync(["archive_mode = off"]);
        await s.Cluster.StartAsync();
        for (var i = 0; i < 6; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'not archived' from generate_series({i * 1000 + 1}, {i * 1000 + 1000}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
            await s.Cluster.SqlAsync("checkpoint");
        }

        var r = await Proc.RunAsync(Proc.Cloudarchive(["wal-receive", "--config", s.Store.ConfigFile, "--dbname", Conninfo(s.Cluster), "--create-slot"]),
            TimeSpan.FromSeconds(60));

        Assert.True(r.ExitCode == 5, r.ToString());
        Assert.Contains("the archive has a gap after", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(new Uri(s.Store.Url).LocalPath, "wal-stream")), "nothing is streamed past the hole");
    }

    /// <summary>Bad input is refused with one line before anything connects or is stored.</summary>
    [Theory]
    [InlineData("--slot", "Bad-Slot", "is not a slot name")]
    [InlineData("--flush-interval", "0", "--flush-interval must be 1 to 3600")]
    [InlineData("--flush-size", "5000", "--flush-size must be 1 to 1024")]
    [InlineData("--application-name", "", "--application-name must be 1 to 63")]
    public async Task BadOptionsAreRefusedWithOneLine(string option, string value, string message)
    {
        var work = TestEnv.NewWorkDir("receive-bad-" + option.TrimStart('-'));
        var store = TestStore.Create("local", work);
        var r = await store.RunAsync("wal-receive", "--dbname", "host=/nonexistent port=1", option, value);
        Assert.Contains(message, Expect.OneLineError(r, 2));
        Assert.False(Directory.Exists(Path.Combine(new Uri(store.Url).LocalPath, "wal-stream")));
    }

    /// <summary>Without --create-slot, a missing slot is named with the command that makes it; nothing is streamed.</summary>
    [Fact]
    public async Task AMissingSlotWithoutCreateSlotIsAUsageErrorNamingHowToMakeIt()
    {
        var s = await StartSourceAsync("receive-no-slot");
        await using var _ = s.Cluster;
        var r = await Proc.RunAsync(Proc.Cloudarchive(["wal-receive", "--config", s.Store.ConfigFile, "--dbname", Conninfo(s.Cluster), "--slot", "absent"]),
            TimeSpan.FromSeconds(60));
        // A long-running receiver's lines carry their time; the error is its last line, and the only one.
        Assert.True(r.ExitCode == 2, r.ToString());
        var error = Assert.Single(r.StderrLines, l => l.Contains("error:", StringComparison.Ordinal));
        Assert.Contains("pg_create_physical_replication_slot('absent', true)", error);
        Assert.Equal(error, r.StderrLines[^1]);
        Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_replication_slots"));
    }
}
