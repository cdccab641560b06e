using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// wal-push and wal-fetch with --agent against real servers: the agent serves them, and killing it (SIGKILL, over and
/// over, mid-request too) loses nothing and stops nothing; only the cluster's user can reach it; a client configured
/// otherwise is never served by it.
/// </summary>
public sealed class AgentTests
{
    private static string Spool(PgCluster c) => Path.Combine(c.DataDir, "pg_wal", ".cloudarchive");

    /// <summary>SIGKILLs the cluster's agent every <paramref name="every"/> until <paramref name="ct"/>; how many it killed.</summary>
    private static async Task<int> KillAgentsAsync(string spool, TimeSpan every, CancellationToken ct)
    {
        var kills = 0;
        while (!ct.IsCancellationRequested)
        {
            try { await Task.Delay(every, ct); } catch (OperationCanceledException) { break; }
            if ((await Proc.RunAsync("pkill", "-9", "-f", $"wal-agent --spool-dir {spool}")).ExitCode == 0) kills++;
        }
        return kills;
    }

    [Fact]
    public async Task ArchivingAndRecoveryThroughTheAgentLoseNothingWhileItIsKilledOverAndOver()
    {
        var work = TestEnv.NewWorkDir("agent");
        var store = TestStore.Create("s3", work);
        var cluster = await PgCluster.InitAsync(Path.Combine(work, "source"),
            ["archive_mode = on", $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args} --agent --log-level debug'"]);
        await using var _ = cluster;
        await cluster.StartAsync();
        await cluster.SqlAsync("create table t (id int primary key, note text)");
        var s = new Source(work, store, cluster);
        await BackupAsync(s);

        // Quiet first: the agent starts and serves.
        for (var i = 0; i < 3; i++)
        {
            await cluster.SqlAsync($"insert into t select g, 'quiet {i} ' || g from generate_series({i * 100 + 1}, {i * 100 + 100}) g");
            await cluster.SqlAsync("select pg_switch_wal()");
            await PointInTimeRecoveryTests.WaitForArchiveAsync(cluster);
        }
        Assert.Contains("push served by the agent", cluster.ServerLog);
        // Only the cluster's user can reach it: a 0600 socket in a 0700 directory, outside the data directory.
        var socket = Directory.GetFiles("/tmp/cloudarchive-agent-postgres", "*.sock").ToList();
        Assert.NotEmpty(socket);
        Assert.All(socket, f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(socket[0])!));

        // Then under fire: the agent killed every 150 ms while segments are archived.
        using var stop = new CancellationTokenSource();
        var killer = KillAgentsAsync(Spool(cluster), TimeSpan.FromMilliseconds(150), stop.Token);
        for (var i = 3; i < 12; i++)
        {
            await cluster.SqlAsync($"insert into t select g, 'under fire {i} ' || g from generate_series({i * 100 + 1}, {i * 100 + 100}) g");
            await cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(cluster);
        await stop.CancelAsync();
        Assert.True(await killer > 0, "no agent was ever killed: the test proved nothing");
        var expected = await cluster.SqlAsync(TableHash);
        await cluster.StopAsync();

        // Recovery through the agent, killed as well: every row back, nothing ended early.
        var dir = TestEnv.SharedDir(work, "restored");
        var r = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"));
        Assert.True(r.ExitCode == 0, r.ToString());
        var restored = await PgCluster.AdoptAsync(dir, ["archive_mode = off"]);
        await using var __ = restored;
        await restored.AppendConfAsync([$"restore_command = '{TestEnv.Binary} wal-fetch %f %p {store.Args} --agent --log-level debug'"], "postgresql.auto.conf");
        using var stop2 = new CancellationTokenSource();
        // Every 500 ms: at 200 the agent, slow to start on a busy VM, was once killed before it served any fetch (CI, session 16).
        var killer2 = KillAgentsAsync(Spool(restored), TimeSpan.FromMilliseconds(500), stop2.Token);
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        await stop2.CancelAsync();
        await killer2;
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        Assert.Contains("fetch served by the agent", restored.ServerLog);
        Secrets.AssertNoneIn(cluster.ServerLog + restored.ServerLog + File.ReadAllText(Path.Combine(Spool(cluster), "agent.log")));
        // Idle agents would end within 5 minutes; a test leaves nothing running.
        foreach (var spool in new[] { Spool(cluster), Spool(restored) }) await Proc.RunAsync("pkill", "-f", $"wal-agent --spool-dir {spool}");
    }

    [Fact]
    public async Task AClientOfAnotherStoreIsNeverServedByTheAgentAndThereIsOneAgentPerCluster()
    {
        var s = await StartSourceAsync("agent-other", "local");
        await using var _ = s.Cluster;
        var other = TestStore.Create("local", Path.Combine(s.Work, "other"));
        var segments = Path.Combine(s.Work, "segments");
        TestEnv.CreateDirectory(segments);
        await s.Cluster.SqlAsync("insert into t values (1, 'one'); select pg_switch_wal()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var pgWal = Path.Combine(s.Cluster.DataDir, "pg_wal");
        var name = Directory.GetFiles(pgWal).Select(Path.GetFileName).Where(f => f!.Length == 24).Order().First()!;

        // Two clients of the first store: the first starts the agent (with the flags it was given), the second is served by it.
        var first = await Proc.AsPostgresAsync([TestEnv.Binary, "wal-push", Path.Combine(pgWal, name), "--config", s.Store.ConfigFile, "--agent",
            "--compress-level", "2"]);
        Assert.True(first.ExitCode == 0, first.ToString());
        await WaitForAsync(() => File.Exists(Path.Combine(pgWal, ".cloudarchive", "agent.lock")));
        await Task.Delay(1000);
        var second = await Proc.AsPostgresAsync([TestEnv.Binary, "wal-push", Path.Combine(pgWal, name), "--config", s.Store.ConfigFile, "--agent",
            "--compress-level", "2", "--log-level", "debug"]);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("push served by the agent", second.Stderr);
        var metrics = await OperationsTests.PrometheusSamplesAsync((await Proc.AsPostgresAsync(
            [TestEnv.Binary, "metrics", "--pgdata", s.Cluster.DataDir, "--config", s.Store.ConfigFile])).Stdout);
        Assert.Equal(1, metrics[$"cloudarchive_agent_running{{store={s.Store.Url}}}"]);
        // Another compression level: not served (it would store what the client did not ask for).
        var level = await Proc.AsPostgresAsync([TestEnv.Binary, "wal-push", Path.Combine(pgWal, name), "--config", s.Store.ConfigFile, "--agent",
            "--compress-level", "3", "--log-level", "debug"]);
        Assert.True(level.ExitCode == 0, level.ToString());
        Assert.DoesNotContain("served by the agent", level.Stderr);
        // A client of another store with the same spool: not served; it pushes to its own store.
        var mine = await Proc.AsPostgresAsync([TestEnv.Binary, "wal-push", Path.Combine(pgWal, name), "--config", other.ConfigFile, "--agent",
            "--log-level", "debug"]);
        Assert.True(mine.ExitCode == 0, mine.ToString());
        Assert.DoesNotContain("served by the agent", mine.Stderr);
        Assert.True(File.Exists(Path.Combine(new Uri(other.Url).LocalPath, "wal", "00000001", name + ".zst")), "the other store did not get its segment");
        // A second agent for the same cluster gives way at once.
        var again = await Proc.AsPostgresAsync([TestEnv.Binary, "wal-agent", "--spool-dir", Path.Combine(pgWal, ".cloudarchive"), "--config", s.Store.ConfigFile],
            timeout: TimeSpan.FromSeconds(30));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(1, (await Proc.RunAsync("pgrep", "-c", "-f", $"wal-agent --spool-dir {Path.Combine(pgWal, ".cloudarchive")}")).Stdout.Trim() switch
        {
            var n => int.Parse(n),
        });
        await Proc.RunAsync("pkill", "-f", $"wal-agent --spool-dir {Path.Combine(pgWal, ".cloudarchive")}");
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (var i = 0; i < 100 && !condition(); i++) await Task.Delay(100);
        Assert.True(condition(), "timed out");
    }
}
