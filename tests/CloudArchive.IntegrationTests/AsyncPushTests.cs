namespace CloudArchive.IntegrationTests;

/// <summary>
/// Async push (wal-push --async): a background worker archives every segment PostgreSQL has marked ready,
/// several at once, while each archive_command still exits 0 only once its own segment is stored.
/// </summary>
public sealed class AsyncPushTests
{
    private const string Async = "--async --async-jobs 2 --log-level info";

    /// <summary>Finishes <paramref name="count"/> WAL segments, each with a few rows in it.</summary>
    private static async Task MakeSegmentsAsync(PgCluster cluster, int count, int firstId)
    {
        for (var i = 0; i < count; i++)
            await cluster.SqlAsync($"insert into t select g, 'burst ' || g from generate_series({firstId + i * 100}, {firstId + i * 100 + 99}) g; select pg_switch_wal()");
    }

    private static string[] ReadyFiles(PgCluster cluster) =>
        Directory.GetFiles(Path.Combine(cluster.DataDir, "pg_wal", "archive_status"), "*.ready");

    private static string SpoolDir(PgCluster cluster) => Path.Combine(cluster.DataDir, "pg_wal", ".cloudarchive", "push");

    [Theory]
    [InlineData("local")]
    [InlineData("s3")]
    public async Task ABurstOfReadySegmentsIsArchivedByTheWorkerAndRestores(string storeKind)
    {
        // Archiving "fails" first, so WAL piles up in pg_wal as it does while a store is down.
        var s = await BackupRestoreTests.StartSourceAsync("async-burst-" + storeKind, storeKind, "archive_command = '/bin/false'");
        await using var _ = s.Cluster;
        await MakeSegmentsAsync(s.Cluster, 12, 1);
        Assert.True(ReadyFiles(s.Cluster).Length >= 12, $"{ReadyFiles(s.Cluster).Length} segments ready");

        await s.Cluster.AppendConfAsync([$"archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args} {Async}'"]);
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        Assert.Empty(ReadyFiles(s.Cluster));

        var log = s.Cluster.ServerLog;
        Assert.True(log.Split("by the async worker").Length - 1 >= 12, "archive_command did not report the worker's pushes:\n" + log);
        var workerLog = await File.ReadAllTextAsync(Path.Combine(SpoolDir(s.Cluster), "worker.log"));
        Assert.Contains("async push worker", workerLog);
        Assert.True(workerLog.Split("cloudarchive: archived ").Length - 1 >= 12, workerLog);
        Assert.DoesNotContain("error", workerLog);
        Secrets.AssertNoneIn(log + workerLog);

        // Every outcome was consumed: nothing is left in the spool but the worker's lock and log.
        Assert.Equal(["worker.lock", "worker.log"], Directory.GetFiles(SpoolDir(s.Cluster)).Select(Path.GetFileName).Order());
        var list = await s.Store.RunAsync("wal-list");
        Assert.True(list.ExitCode == 0 && !list.Stdout.Contains("GAP"), list.ToString());

        await BackupRestoreTests.BackupAsync(s);
        await MakeSegmentsAsync(s.Cluster, 3, 5000);
        await BackupRestoreTests.AssertLatestRestoresAsync(s);
    }

    /// <summary>A source on a local store whose directory the test can make read-only, archiving with <paramref name="pushArgs"/>.</summary>
    private static async Task<(BackupRestoreTests.Source, string StoreDir)> StartOnLocalStoreAsync(string name, string pushArgs)
    {
        var s = await BackupRestoreTests.StartSourceAsync(name, "local");
        var storeDir = s.Store.Url["file://".Length..];
        TestEnv.CreateDirectory(storeDir);
        await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:", storeDir));
        await s.Cluster.AppendConfAsync([$"archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args} {pushArgs}'"]);
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        return (s, storeDir);
    }

    [Fact]
    public async Task WorkersKilledMidBurstAreReplacedAndNothingIsLost()
    {
        var s = await BackupRestoreTests.StartSourceAsync("async-kill", "local");
        await using var _ = s.Cluster;
        await BackupRestoreTests.BackupAsync(s);
        await s.Cluster.AppendConfAsync(["archive_command = '/bin/false'"]);
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        // Twelve full segments of text at zstd level 9: a worker has seconds of work, not milliseconds.
        for (var i = 0; i < 12; i++)
            await s.Cluster.SqlAsync($"insert into t select g, repeat(md5(g::text), 12) from generate_series({i * 40000 + 1}, {(i + 1) * 40000}) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await s.Cluster.AppendConfAsync([$"archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args} {Async} --compress-level 9'"]);
        await s.Cluster.SqlAsync("select pg_reload_conf()");

        // SIGKILL the first three workers as soon as they run, whatever they are doing.
        var killed = 0;
        for (var i = 0; i < 1500 && killed < 3 && ReadyFiles(s.Cluster).Length > 0; i++)
        {
            if ((await Proc.RunAsync("pkill", "-KILL", "-f", "--", $"wal-push-worker.*{s.Store.ConfigFile}")).ExitCode == 0) killed++;
            else await Task.Delay(20);
        }
        Assert.True(killed == 3, $"only {killed} workers were killed before the burst was archived: the test did not test anything");

        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var list = await s.Store.RunAsync("wal-list");
        Assert.True(list.ExitCode == 0 && !list.Stdout.Contains("GAP"), list.ToString());
        await BackupRestoreTests.AssertLatestRestoresAsync(s);
    }

    [Fact]
    public async Task AStoreThatRefusesWritesIsReportedByArchiveCommandAndArchivingResumesWhenItIsBack()
    {
        var (s, storeDir) = await StartOnLocalStoreAsync("async-down", $"{Async} --retry-timeout 0");
        await using var _ = s.Cluster;
        SetStoreWritable(storeDir, false);
        await MakeSegmentsAsync(s.Cluster, 3, 1);

        // PostgreSQL's log gets the worker's reason through the wal-push it runs; nothing is marked archived.
        // Both lines waited for: the archiver logs its own line after wal-push's stderr, a moment later under load.
        await WaitForAsync(() => s.Cluster.ServerLog.Contains("async push of ") && s.Cluster.ServerLog.Contains("archive command failed with exit code"),
            "a failed async push in the server log:\n" + s.Cluster.ServerLog);
        Assert.Matches("cloudarchive: error: async push of [0-9A-F]{24} failed: ", s.Cluster.ServerLog);
        Assert.Contains("archive command failed with exit code", s.Cluster.ServerLog);
        Assert.Equal("", await s.Cluster.SqlAsync("select coalesce(last_archived_wal, '') from pg_stat_archiver"));
        Assert.True(ReadyFiles(s.Cluster).Length >= 3);

        SetStoreWritable(storeDir, true);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        Assert.Empty(ReadyFiles(s.Cluster));
        await BackupRestoreTests.BackupAsync(s);
        await BackupRestoreTests.AssertLatestRestoresAsync(s);
    }

    /// <summary>
    /// The store is unreachable (its endpoint refuses connections: an outage, not a refusal): past --max-queue-bytes the
    /// oldest segments are dropped, loudly, so pg_wal drains; once it is back archiving resumes and the gap shows. Pushed one
    /// process each (the async worker's outcome carries the same: WalServicesTests.TheAsyncWorkerDropsOnlyForAnOutage); a
    /// store that refuses drops nothing (WalServicesTests.AStoreThatRefusesIsNotAnOutageAndNothingIsDropped).
    /// </summary>
    [Fact]
    public async Task PastMaxQueueBytesSegmentsAreDroppedLoudlyAndTheGapIsVisible()
    {
        var s = await BackupRestoreTests.StartSourceAsync("drop", "s3");
        await using var _ = s.Cluster;
        async Task ArchiveCommandAsync(string extra)
        {
            await s.Cluster.AppendConfAsync([$"archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args} --retry-timeout 0 --max-queue-bytes 40MiB{extra}'"]);
            await s.Cluster.SqlAsync("select pg_reload_conf()");
        }
        await ArchiveCommandAsync("");
        await s.Cluster.SqlAsync("insert into t values (0, 'first')");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster); // the store works: one segment archived

        await ArchiveCommandAsync(" --s3-endpoint https://127.0.0.1:9");
        await MakeSegmentsAsync(s.Cluster, 5, 1);
        // 5 x 16 MiB waiting > 40 MiB: the oldest are reported archived without being stored, so pg_wal drains.
        await WaitForAsync(() => ReadyFiles(s.Cluster).Length <= 2, "pg_wal to drain below the limit:\n" + s.Cluster.ServerLog);
        Assert.Matches(@"cloudarchive: error: DROPPED [0-9A-F]{24}: \d+\.\d MiB of WAL is waiting to be archived, over --max-queue-bytes 40\.0 MiB", s.Cluster.ServerLog);
        Assert.Contains("is NOT archived", await File.ReadAllTextAsync(Path.Combine(SpoolDir(s.Cluster), "dropped.log")));

        await ArchiveCommandAsync("");
        await MakeSegmentsAsync(s.Cluster, 1, 1000);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var list = await s.Store.RunAsync("wal-list");
        Assert.Contains("GAP", list.Stdout);
    }

    /// <summary>A backlog over --max-queue-bytes that a working store drains loses nothing: dropping is for a store that fails.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AHealthyStoreDrainingABurstNeverDrops(bool async)
    {
        var store = LocalStore.Create("burst-healthy", out var work);
        var pgWal = Path.Combine(work, "pg_wal");
        TestEnv.CreateDirectory(Path.Combine(pgWal, "archive_status"));
        var names = Enumerable.Range(1, 4).Select(i => $"0000000100000000000000{i:X2}").ToList();
        foreach (var n in names)
        {
            TestSegments.WriteSegment(pgWal, n, seed: n.GetHashCode(), size: 16 << 20);
            await File.WriteAllTextAsync(Path.Combine(pgWal, "archive_status", n + ".ready"), "");
        }

        // 64 MiB waiting, a 32 MiB limit: the first look at the backlog is over it.
        var r = await store.Cli.RunAsync([.. new[] { "wal-push", Path.Combine(pgWal, names[0]), "--max-queue-bytes", "32MiB" }, .. async ? new[] { "--async" } : []],
            null, null, TimeSpan.FromMinutes(2));

        Expect.Exit(r, 0);
        Assert.DoesNotContain("DROPPED", r.Stderr);
        Assert.True(File.Exists(store.ObjectPath(names[0])), "the segment was reported archived but is not in the store");
        Assert.False(File.Exists(Path.Combine(pgWal, ".cloudarchive", "push", "dropped.log")));
    }

    [Fact]
    public async Task AnOutcomeLeftForAnotherVersionOfTheFileIsNotTrusted()
    {
        var store = LocalStore.Create("async-stale", out var work);
        var pgWal = Path.Combine(work, "pg_wal");
        TestEnv.CreateDirectory(Path.Combine(pgWal, "archive_status"));
        const string name = "000000010000000000000007";
        var segment = TestSegments.Segment(name, seed: 7);
        var path = TestSegments.Write(pgWal, name, segment);
        await File.WriteAllTextAsync(Path.Combine(pgWal, "archive_status", name + ".ready"), "");
        // "Pushed" says a stale outcome for a file of another size: it must not make wal-push exit 0 unstored.
        var spool = Path.Combine(pgWal, ".cloudarchive", "push");
        TestEnv.CreateDirectory(spool);
        await File.WriteAllTextAsync(Path.Combine(spool, name + ".ok"), $"{segment.Length + 1} {File.GetLastWriteTimeUtc(path).Ticks}\n");

        var r = await store.Cli.RunAsync(["wal-push", path, "--async", "--log-level", "info"], null, null, TimeSpan.FromMinutes(2));

        Expect.Exit(r, 0);
        Assert.Contains("by the async worker", r.Stderr);
        Assert.Equal(TestSegments.Sha256(segment), LocalStore.Read(store.ObjectPath(name)).Metadata["sha256"]);
        Assert.True(File.Exists(store.RecordPath(name)));
    }

    [Fact]
    public async Task TheWorkersRefusalReachesWalPushWithItsExitCode()
    {
        var store = LocalStore.Create("async-refuse", out var work);
        const string name = "000000010000000000000009";
        var other = TestSegments.WriteSegment(Path.Combine(work, "other"), name, seed: 1);
        await store.Cli.OkAsync("wal-push", other);
        var pgWal = Path.Combine(work, "pg_wal");
        TestEnv.CreateDirectory(Path.Combine(pgWal, "archive_status"));
        var path = TestSegments.WriteSegment(pgWal, name, seed: 2);
        await File.WriteAllTextAsync(Path.Combine(pgWal, "archive_status", name + ".ready"), "");

        var r = await store.Cli.RunAsync(["wal-push", path, "--async"], null, null, TimeSpan.FromMinutes(2));

        var line = Expect.OneLineError(r, 3);
        Assert.Contains($"async push of {name} failed: {name} is already archived", line);
        Assert.Contains("different content", line);
        Assert.Equal(TestSegments.Sha256File(other), LocalStore.Read(store.ObjectPath(name)).Metadata["sha256"]);
        // Reported once: the outcome is consumed, and the next attempt asks the worker again.
        Assert.Empty(Directory.GetFiles(Path.Combine(pgWal, ".cloudarchive", "push"), "*.error"));
    }

    /// <summary>The local store "goes read-only" (or comes back) for the cluster owner: every directory in it.</summary>
    private static void SetStoreWritable(string storeDir, bool writable)
    {
        var mode = UnixFileMode.UserRead | UnixFileMode.UserExecute | (writable ? UnixFileMode.UserWrite : 0);
        foreach (var dir in Directory.GetDirectories(storeDir, "*", SearchOption.AllDirectories).Append(storeDir))
            File.SetUnixFileMode(dir, mode);
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 600; i++)
        {
            if (condition()) return;
            await Task.Delay(100);
        }
        throw new TimeoutException("timed out waiting for " + what);
    }
}
