using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// A Patroni cluster (Patroni 3 and etcd from Debian, three members of PostgreSQL 15 on 127.0.0.1, infra/patroni-cluster.sh)
/// archiving into one local store through its DCS configuration, with infra/patroni-restore-replica.sh as the first replica
/// creation method.
/// </summary>
public sealed class PatroniTests
{
    /// <summary>
    /// The life of a cluster: it bootstraps (the replicas, made before any backup, fall back to basebackup); a backup is
    /// taken on the leader; a switchover and a failover (the leader's Patroni and postmaster killed together) each go on
    /// archiving on the next timeline without a failed wal-push on any member; the lost member, its data directory gone,
    /// comes back as a replica made from the store (restore --standby, replaying timelines 1 to 3, then streaming); a
    /// backup is taken on a replica; and a restore of the archive's end holds every row the leader has.
    /// </summary>
    [Fact]
    public async Task ArchivingFollowsSwitchoverAndFailoverAndALostMemberComesBackFromTheStore()
    {
        var work = TestEnv.NewWorkDir("patroni");
        var store = TestStore.Create("local", work);
        // Where an operator would install it: a place the cluster's user can read (the repository need not be).
        var method = Path.Combine(work, "patroni-restore-replica.sh");
        File.Copy(TestEnv.Infra("patroni-restore-replica.sh"), method);
        File.SetUnixFileMode(method, (UnixFileMode)0b111_101_101);
        await using var cluster = await PatroniCluster.StartAsync(Path.Combine(work, "cluster"),
            $"{TestEnv.Binary} wal-push %p {store.Args}", $"{TestEnv.Binary} wal-fetch %f %p {store.Args}",
            method, $"binary={TestEnv.Binary}", $"config={store.ConfigFile}");

        var members = await cluster.WaitForAsync(m => m.Count(x => x.IsRunningLeader) == 1 && m.Count(x => x.IsRunningReplica) == 2,
            "a leader and two running replicas");
        var first = members.Single(m => m.IsRunningLeader).Name;
        var replicas = members.Where(m => m.IsRunningReplica).Select(m => m.Name).ToList();
        foreach (var name in replicas)
        {
            var log = cluster.Log(name);
            Assert.Contains("Error creating replica using method cloudarchive", log);
            Assert.Contains("the store holds no base backup", log);
            Assert.Contains("exited with code=8", log);
            Assert.Contains("replica has been created using basebackup", log);
        }
        var leader = cluster.Server(first);
        await leader.SqlAsync("create table t (id int primary key, note text)");
        await leader.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 200) g");
        await BackupAsync(new Source(work, store, leader));
        await leader.SqlAsync("insert into t select g, 'after the backup ' || g from generate_series(201, 300) g");

        // Switchover: the old leader stops cleanly and follows; the candidate archives timeline 2.
        var second = replicas[0];
        await cluster.SwitchoverAsync(first, second);
        await cluster.WaitForAsync(m => m.Any(x => x.Name == second && x.IsRunningLeader && x.Timeline == 2)
            && m.Count(x => x.IsRunningReplica && x.Timeline == 2) == 2, $"the switchover to {second}");
        leader = cluster.Server(second);
        await leader.SqlAsync("insert into t select g, 'after the switchover ' || g from generate_series(301, 500) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(leader);
        Assert.True(File.Exists(Path.Combine(new Uri(store.Url).LocalPath, "wal", "00000002", "00000002.history.zst")));

        // Failover: every row replicated, then the leader's host is lost.
        await leader.SqlAsync("insert into t select g, 'before the failover ' || g from generate_series(501, 600) g");
        var atFailover = await leader.SqlAsync(TableHash);
        foreach (var name in cluster.Names.Where(n => n != second))
            await WaitForRowsAsync(cluster.Server(name), atFailover, cluster);
        await cluster.KillAsync(second);
        members = await cluster.WaitForAsync(m => m.Any(x => x.Name != second && x.IsRunningLeader && x.Timeline == 3), $"a failover from {second}");
        var third = members.Single(m => m.IsRunningLeader).Name;
        leader = cluster.Server(third);
        Assert.Equal(atFailover, await leader.SqlAsync(TableHash));
        await leader.SqlAsync("insert into t select g, 'after the failover ' || g from generate_series(601, 800) g");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(leader);

        // The lost member comes back empty: Patroni runs the CloudArchive method, which restores the timeline 1 backup
        // as a standby; it replays the archive through timelines 2 and 3, then streams from the leader.
        Directory.Delete(cluster.DataDir(second), recursive: true);
        var logBefore = cluster.Log(second).Length;
        await cluster.StartMemberAsync(second);
        await cluster.WaitForAsync(m => m.Any(x => x.Name == second && x.IsRunningReplica && x.Timeline == 3), $"{second} back as a replica");
        var rebuilt = cluster.Log(second)[logBefore..];
        Assert.Contains("replica has been created using cloudarchive", rebuilt);
        Assert.DoesNotContain("replica has been created using basebackup", rebuilt);
        Assert.Contains("every checksum verified", rebuilt);
        // Patroni writes its own recovery settings, and removes those restore wrote to postgresql.auto.conf.
        var auto = await File.ReadAllTextAsync(Path.Combine(cluster.DataDir(second), "postgresql.auto.conf"));
        Assert.DoesNotContain("primary_conninfo", auto);
        Assert.DoesNotContain("restore_command", auto);
        Assert.Matches("restored log file \"00000002[0-9A-F]{16}\" from archive", rebuilt);
        await leader.SqlAsync("insert into t select g, 'streamed ' || g from generate_series(801, 850) g");
        var streamed = await leader.SqlAsync(TableHash);
        await WaitForRowsAsync(cluster.Server(second), streamed, cluster);

        // A backup on a replica (the leader asked to switch through Patroni's primary_conninfo), then more rows.
        var replica = cluster.Names.First(n => n != third);
        Assert.Equal(200, await cluster.ApiStatusAsync(third, "leader"));
        Assert.NotEqual(200, await cluster.ApiStatusAsync(replica, "leader"));
        await BackupAsync(new Source(work, store, cluster.Server(replica)));
        await leader.SqlAsync("insert into t select g, 'after the last backup ' || g from generate_series(851, 900) g");
        var expected = await leader.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(leader);

        // No member ever failed a push; the archive shows the three timelines.
        foreach (var name in cluster.Names)
        {
            Assert.Equal("0", await cluster.Server(name).SqlAsync("select failed_count from pg_stat_archiver"));
            Assert.DoesNotContain("archive command failed", cluster.Log(name));
        }
        var status = await CloudArchiveAsPostgres(new Source(work, store, leader), "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        foreach (var timeline in new[] { 1, 2, 3 }) Assert.Contains($"  timeline {timeline}: last ", status.Stdout);
        // The failover's promotion archived the lost timeline's last segment as .partial (a switchover's old leader
        // archives its last segment as it shuts down, so a .partial of timeline 1 comes or not, by timing).
        var walList = (await CloudArchiveAsPostgres(new Source(work, store, leader), "wal-list")).Stdout;
        Assert.Matches("partial 00000002[0-9A-F]{16}\\.partial", walList);
        var backups = (await CloudArchiveAsPostgres(new Source(work, store, leader), "backup-list")).Stdout;
        Assert.Contains("on primary cloudarchive-test", backups);
        Assert.Contains("on standby cloudarchive-test", backups);

        // Restore is the proof. The copy's postgresql.conf is Patroni's, naming a member's hba_file and ident_file: its own instead.
        var copy = Path.Combine(work, "restored", "data");
        await using var restored = await RestoreAndStartAsync(new Source(work, store, leader), "restored", [], extraConf:
            [$"hba_file = '{copy}/pg_hba.conf'", $"ident_file = '{copy}/pg_ident.conf'"]);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    /// <summary>
    /// The replica method runs restore only for what Patroni passes: a replica's role, an absolute data directory, keys it
    /// knows; anything else is exit 2 with one line (Patroni then goes on to its next method), and restore never starts.
    /// </summary>
    [Theory]
    [InlineData("--role=master", "--role=replica expected")]
    [InlineData("--datadir=data", "--datadir must be an absolute path")]
    [InlineData("--restore_command=x", "unknown argument '--restore_command'")]
    public async Task TheReplicaMethodRefusesArgumentsPatroniDoesNotPassForAReplica(string bad, string message)
    {
        var work = TestEnv.NewWorkDir("patroni-method");
        var ran = Path.Combine(work, "ran");
        var binary = Path.Combine(work, "cloudarchive");
        await File.WriteAllTextAsync(binary, $"#!/bin/sh\ntouch {ran}\n");
        File.SetUnixFileMode(binary, (UnixFileMode)0b111_101_101);
        string[] args = ["--scope=s", "--role=replica", $"--datadir={work}/data", "--connstring=host=127.0.0.1", $"--binary={binary}", "--keep_data=False"];
        var ok = await Proc.RunAsync(TestEnv.Infra("patroni-restore-replica.sh"), args);
        Assert.True(ok.ExitCode == 0 && File.Exists(ran), ok.ToString());
        File.Delete(ran);

        var r = await Proc.RunAsync(TestEnv.Infra("patroni-restore-replica.sh"), [.. args.Where(a => a.Split('=')[0] != bad.Split('=')[0]), bad]);

        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, Assert.Single(r.StderrLines));
        Assert.False(File.Exists(ran));
    }

    private static async Task WaitForRowsAsync(PgCluster server, string tableHash, PatroniCluster cluster)
    {
        for (var i = 0; i < 600; i++)
        {
            if (await server.SqlAsync(TableHash) == tableHash) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"the rows did not reach {server.Dir} in 60 s; members: {string.Join("; ", await cluster.MembersAsync() ?? [])}");
    }
}
