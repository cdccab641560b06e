using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// wal-receive against real servers and stores: a commit that returned under a synchronous receiver survives its
/// primary killed with SIGKILL and its data directory deleted; an asynchronous one loses at most its flush interval;
/// a promotion while it is behind is followed (the old timeline to its end, then the new one); what a receiver and
/// archive_command both store is the same object; bad input is refused before anything connects.
/// </summary>
public sealed class WalReceiveTests(ITestOutputHelper output)
{
    /// <summary>A running wal-receive as the cluster owner, its output collected.</summary>
    private sealed class Receiver : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _log = new();

        public Receiver(Source s, string conninfo, params string[] extra)
        {
            var psi = Proc.Cloudarchive(["wal-receive", "--config", s.Store.ConfigFile, "--dbname", conninfo, "--log-level", "info", .. extra]);
            _process = Process.Start(psi)!;
            _process.StandardInput.Close();
            _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
            _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public string Log { get { lock (_log) return _log.ToString(); } }

        /// <summary>SIGTERM, then its exit code (it must stop on its own).</summary>
        public async Task<int> StopAsync()
        {
            if (!_process.HasExited) await Proc.RunAsync("kill", "-TERM", _process.Id.ToString());
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await _process.WaitForExitAsync(limit.Token);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            _process.Dispose();
        }
    }

    private static string Conninfo(PgCluster c) => $"host={c.Dir} port={c.Port} user=postgres";

    private static async Task WaitForAsync(Func<Task<bool>> done, string what, Func<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (!await done())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"timed out waiting for {what}; the receiver said:\n{log()}");
            await Task.Delay(200);
        }
    }

    /// <summary>Kills the postmaster and every process it started with SIGKILL, as a host that loses power would.</summary>
    private static async Task KillWithSigkillAsync(PgCluster cluster)
    {
        var pid = int.Parse(File.ReadLines(Path.Combine(cluster.DataDir, "postmaster.pid")).First());
        var children = Directory.EnumerateDirectories("/proc").Select(Path.GetFileName)
            .Where(d => int.TryParse(d, out _))
            .Select(d => (Pid: int.Parse(d!), Stat: TryRead($"/proc/{d}/stat")))
            .Where(p => p.Stat is { } stat && int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]) == pid)
            .Select(p => p.Pid).ToList();
        await Proc.RunAsync("kill", ["-KILL", pid.ToString(), .. children.Select(c => c.ToString())]);
    }

    private static string? TryRead(string path)
    {
        try { return File.ReadAllText(path); } catch (IOException) { return null; }
    }

    /// <summary>
    /// The proof of zero data loss: the receiver in synchronous mode, listed in synchronous_standby_names; rows committed
    /// one by one; the primary killed with SIGKILL and its data directory deleted. A restore from the store to the end of
    /// the archive (the base backup, the archived segments, the streamed prefix of the segment in progress) has every row
    /// whose commit returned.
    /// </summary>
    [Theory]
    [InlineData("local", 15)]
    [InlineData("s3", 15)]
    [InlineData("azure", 15)]
    [InlineData("local", 18)]
    [InlineData("s3", 18)]
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
        await using var receiver = new Receiver(s, Conninfo(cluster), "--create-slot", "--synchronous");
        await WaitForAsync(async () => await cluster.SqlAsync("select count(*) from pg_stat_replication where flush_lsn is not null") == "1",
            "the receiver streaming", () => receiver.Log);
        await cluster.SqlAsync("alter system set synchronous_standby_names = 'cloudarchive'");
        await cluster.SqlAsync("select pg_reload_conf()");
        await cluster.SqlAsync("insert into t values (51, 'before the outage')");

        proxy.Down = true;
        var held = cluster.SqlAsync("insert into t values (52, 'committed during the outage')");
        await Task.Delay(TimeSpan.FromSeconds(30));
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
            await Task.Delay(50);
        }
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

    /// <summary>
    /// A promotion while the receiver is behind: it was stopped, the primary committed more (its standby got it), the
    /// primary stopped and the standby was promoted. Pointed at the new primary, the receiver streams the old timeline
    /// to its end (PostgreSQL ends it with CopyDone), then the new one, with the history file; the restore to the end
    /// of the archive has every row of both timelines, with no archive_command on the new primary.
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
        await using var standby = await PgCluster.AdoptAsync(standbyDir, "archive_mode = off", "hot_standby = on");
        await standby.StartAsync();

        await using (var first = new Receiver(s, Conninfo(s.Cluster), "--create-slot", "--flush-interval", "1"))
        {
            await s.Cluster.SqlAsync("insert into t select g, 'timeline 1, streamed ' || g from generate_series(101, 200) g");
            var end = await s.Cluster.SqlAsync("select pg_current_wal_lsn()");
            await WaitForAsync(async () => await s.Cluster.SqlAsync($"select flush_lsn >= '{end}' from pg_stat_replication where application_name = 'cloudarchive'") == "t",
                "the receiver storing timeline 1", () => first.Log);
            Assert.Equal(0, await first.StopAsync());
        }
        // Behind: rows on timeline 1 the receiver has not seen, which the standby has.
        await s.Cluster.SqlAsync("insert into t select g, 'timeline 1, not yet received ' || g from generate_series(201, 300) g");
        var primaryEnd = await s.Cluster.SqlAsync("select pg_current_wal_lsn()");
        await WaitForAsync(async () => await standby.SqlAsync($"select pg_last_wal_replay_lsn() >= '{primaryEnd}'") == "t", "the standby catching up",
            () => standby.ServerLog);
        await s.Cluster.StopAsync();
        await standby.SqlAsync("select pg_promote()");
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(standby);
        await standby.SqlAsync("insert into t select g, 'timeline 2 ' || g from generate_series(301, 400) g");
        await standby.SqlAsync("select pg_switch_wal()");
        await standby.SqlAsync("insert into t select g, 'timeline 2, in progress ' || g from generate_series(401, 420) g");
        var expected = await standby.SqlAsync(TableHash);
        var newEnd = await standby.SqlAsync("select pg_current_wal_lsn()");

        await using (var second = new Receiver(s, Conninfo(standby), "--create-slot", "--flush-interval", "1"))
        {
            await WaitForAsync(async () => await standby.SqlAsync(
                $"select coalesce(bool_or(flush_lsn >= '{newEnd}'), false) from pg_stat_replication where application_name = 'cloudarchive'") == "t",
                "the receiver storing timeline 2", () => second.Log);
            Assert.Equal(0, await second.StopAsync());
            output.WriteLine(second.Log);
            Assert.Contains("ended the stream of timeline 1", second.Log);
            Assert.Contains("streaming timeline 2", second.Log);
        }
        Assert.True(File.Exists(Path.Combine(new Uri(s.Store.Url).LocalPath, "wal", "00000002", "00000002.history.zst")));
        await standby.StopAsync();

        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
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
