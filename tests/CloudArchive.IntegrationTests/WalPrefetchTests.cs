using System.Diagnostics;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// wal-fetch --prefetch: the next segments are fetched ahead into pg_wal/.cloudarchive/prefetch, and only a
/// verified segment of the same store, cluster and name is ever handed to PostgreSQL from there.
/// </summary>
public sealed class WalPrefetchTests
{
    private const string FromSpool = "from the prefetch spool";

    private static string Seg(uint timeline, int number) => $"{timeline:X8}00000000{number:X8}";

    /// <summary>A data directory (PG_VERSION, pg_wal) as restore_command's working directory; its spool root.</summary>
    private static (string DataDir, string SpoolRoot) DataDirectory(string work, bool inRecovery = false)
    {
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        File.WriteAllText(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        if (inRecovery) File.WriteAllText(Path.Combine(dataDir, "recovery.signal"), "");
        return (dataDir, Path.Combine(dataDir, "pg_wal", ".cloudarchive"));
    }

    private static async Task<Dictionary<string, byte[]>> PushAsync(Cli cli, string work, IEnumerable<string> names, int seed, int size = TestSegments.OneMib)
    {
        var pushed = new Dictionary<string, byte[]>();
        foreach (var name in names)
        {
            var bytes = TestSegments.Segment(name, seed + Convert.ToInt32(name[16..], 16) + 37 * (int)TestSegments.TimelineOf(name), size);
            await cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "source-" + seed), name, bytes));
            pushed[name] = bytes;
        }
        return pushed;
    }

    private static Task<ProcResult> FetchAsync(Cli cli, string dataDir, string name, params string[] more) =>
        cli.RunAsync(["wal-fetch", name, "pg_wal/RECOVERYXLOG", "--log-level", "info", .. more], null, dataDir);

    private static byte[] Restored(string dataDir) => File.ReadAllBytes(Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG"));

    private static List<string> SpooledNames(string spoolRoot) =>
        Directory.EnumerateFiles(Path.Combine(spoolRoot, "prefetch")).Select(Path.GetFileName).Where(n => n!.Length == 24).Order(StringComparer.Ordinal).ToList()!;

    private static List<string> HiddenFiles(string spoolRoot) =>
        Directory.EnumerateFiles(Path.Combine(spoolRoot, "prefetch"), ".*", new EnumerationOptions { AttributesToSkip = 0 }).Select(Path.GetFileName).ToList()!;

    [Theory]
    [InlineData("local")]
    [InlineData("s3")]
    public async Task RecoveryReplaysSegmentsFromThePrefetchSpool(string storeKind)
    {
        var s = await BackupRestoreTests.StartSourceAsync("prefetch-pitr-" + storeKind, storeKind);
        await using var _ = s.Cluster;
        var backupDir = TestEnv.SharedDir(s.Work, "restored");
        // -X none: every segment after the backup comes through restore_command.
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pg_basebackup", "-D", Path.Combine(backupDir, "data"), "-X", "none", "-c", "fast"));
        for (var batch = 0; batch < 12; batch++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, md5(g::text) from generate_series({batch * 5000 + 1}, {(batch + 1) * 5000}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        var expected = await s.Cluster.SqlAsync(BackupRestoreTests.TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        await using var restored = await PgCluster.AdoptAsync(backupDir,
            $"restore_command = '{TestEnv.Binary} wal-fetch %f %p {s.Store.Args} --prefetch 4 --log-level info'",
            "recovery_target_action = 'promote'",
            "archive_mode = off");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", Path.Combine(restored.DataDir, "recovery.signal")]));
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);

        Assert.Equal(expected, await restored.SqlAsync(BackupRestoreTests.TableHash));
        var log = restored.ServerLog;
        var fromStore = log.Split('\n').Count(l => l.Contains("cloudarchive: restored 0") && !l.Contains(FromSpool));
        var fromSpool = log.Split('\n').Count(l => l.Contains(FromSpool));
        Assert.True(fromSpool >= 3, $"{fromSpool} segments from the spool, {fromStore} from the store:\n{log}");
        var spoolRoot = Path.Combine(restored.DataDir, "pg_wal", ".cloudarchive");
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.Empty(HiddenFiles(spoolRoot));
        Secrets.AssertNoneIn(log + File.ReadAllText(Path.Combine(spoolRoot, "prefetch", "prefetch.log")) + File.ReadAllText(Path.Combine(spoolRoot, "prefetch", "IDENTITY")));
    }

    [Fact]
    public async Task ASpoolOfAnotherStoreIsNeverHandedOut()
    {
        var work = TestEnv.NewWorkDir("prefetch-stale");
        var other = new LocalStore(Path.Combine(work, "other-store"));
        var store = new LocalStore(Path.Combine(work, "store"));
        string[] names = [Seg(1, 1), Seg(1, 2)];
        await PushAsync(other.Cli, work, names, seed: 100);
        var ours = await PushAsync(store.Cli, work, names, seed: 200);
        var (dataDir, spoolRoot) = DataDirectory(work);

        // The other store's prefetcher leaves its segment 2 in the spool.
        Expect.Exit(await FetchAsync(other.Cli, dataDir, names[0], "--prefetch", "2"), 0);
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.Equal([names[1]], SpooledNames(spoolRoot));
        var theirs = TestSegments.Sha256File(Path.Combine(spoolRoot, "prefetch", names[1]));
        Assert.NotEqual(TestSegments.Sha256(ours[names[1]]), theirs);

        var r = await FetchAsync(store.Cli, dataDir, names[1], "--prefetch", "2");

        Expect.Exit(r, 0);
        Assert.DoesNotContain(FromSpool, r.Stderr);
        Assert.Equal(TestSegments.Sha256(ours[names[1]]), TestSegments.Sha256(Restored(dataDir)));
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.DoesNotContain(SpooledNames(spoolRoot), n => TestSegments.Sha256File(Path.Combine(spoolRoot, "prefetch", n)) == theirs);
        Assert.DoesNotContain(store.Dir, File.ReadAllText(Path.Combine(spoolRoot, "prefetch", "IDENTITY")));
    }

    [Fact]
    public async Task ASpoolOfAnotherDatabaseSystemIsNeverHandedOut()
    {
        var work = TestEnv.NewWorkDir("prefetch-sysid");
        var store = new LocalStore(Path.Combine(work, "store"));
        string[] names = [Seg(1, 1), Seg(1, 2), Seg(1, 3)];
        var pushed = await PushAsync(store.Cli, work, names, seed: 300);
        var (dataDir, spoolRoot) = DataDirectory(work);
        TestEnv.CreateDirectory(Path.Combine(dataDir, "global"));
        var control = Path.Combine(dataDir, "global", "pg_control");
        await File.WriteAllBytesAsync(control, BitConverter.GetBytes(TestSegments.SystemId));

        Expect.Exit(await FetchAsync(store.Cli, dataDir, names[0], "--prefetch", "2"), 0);
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.Equal(names[1..], SpooledNames(spoolRoot));
        Assert.Contains(FromSpool, (await FetchAsync(store.Cli, dataDir, names[1], "--prefetch", "2")).Stderr);
        await WaitForPrefetchersAsync(spoolRoot);

        // The data directory is now another cluster's: what the spool holds is not for it.
        await File.WriteAllBytesAsync(control, BitConverter.GetBytes(TestSegments.SystemId + 1));
        var r = await FetchAsync(store.Cli, dataDir, names[2], "--prefetch", "2");

        // Not from the spool, and not from the store either: the archived segment is the old cluster's too.
        Assert.DoesNotContain(FromSpool, r.Stderr);
        Expect.Exit(r, 200);
        Assert.Contains($"belongs to database system {TestSegments.SystemId}, but the cluster in recovery is {TestSegments.SystemId + 1}", r.Stderr);
        Assert.Equal(pushed[names[1]], Restored(dataDir)); // what the last successful fetch left, untouched
    }

    [Fact]
    public async Task ATimelineTwoNameNeverGetsATimelineOneFile()
    {
        var work = TestEnv.NewWorkDir("prefetch-timeline");
        var store = new LocalStore(Path.Combine(work, "store"));
        var tl1 = await PushAsync(store.Cli, work, Enumerable.Range(1, 6).Select(i => Seg(1, i)), seed: 400);
        var tl2 = await PushAsync(store.Cli, work, Enumerable.Range(3, 4).Select(i => Seg(2, i)), seed: 500);
        var (dataDir, spoolRoot) = DataDirectory(work);

        Expect.Exit(await FetchAsync(store.Cli, dataDir, Seg(1, 1), "--prefetch", "3"), 0);
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.Equal([Seg(1, 2), Seg(1, 3), Seg(1, 4)], SpooledNames(spoolRoot));
        // And by hand, the timeline-1 segments at the same positions as the timeline-2 ones asked for next.
        foreach (var n in new[] { 5, 6 }) await File.WriteAllBytesAsync(Path.Combine(spoolRoot, "prefetch", Seg(1, n)), tl1[Seg(1, n)]);

        var r = await FetchAsync(store.Cli, dataDir, Seg(2, 3), "--prefetch", "3");

        Expect.Exit(r, 0);
        Assert.DoesNotContain(FromSpool, r.Stderr);
        Assert.Equal(tl2[Seg(2, 3)], Restored(dataDir));
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.Equal([Seg(2, 4), Seg(2, 5), Seg(2, 6)], SpooledNames(spoolRoot));
        foreach (var n in new[] { 4, 5, 6 })
        {
            var next = await FetchAsync(store.Cli, dataDir, Seg(2, n), "--prefetch", "3");
            Expect.Exit(next, 0);
            Assert.Equal(tl2[Seg(2, n)], Restored(dataDir));
        }
        Assert.Empty(SpooledNames(spoolRoot));
    }

    [Fact]
    public async Task AKilledPrefetcherLeavesOnlyHiddenFilesThatAreNeverHandedOut()
    {
        var work = TestEnv.NewWorkDir("prefetch-kill");
        var store = new LocalStore(Path.Combine(work, "store"));
        const int Mib16 = 16 * TestSegments.OneMib;
        // 32 segments to fetch ahead: a window long enough to catch the worker in, even on a busy machine.
        var pushed = await PushAsync(store.Cli, work, Enumerable.Range(1, 33).Select(i => Seg(1, i)), seed: 600, size: Mib16);
        var (dataDir, spoolRoot) = DataDirectory(work);

        Expect.Exit(await FetchAsync(store.Cli, dataDir, Seg(1, 1), "--prefetch", "32"), 0);
        var hidden = new List<string>();
        var clock = Stopwatch.StartNew();
        var worker = 0;
        while (hidden.Count == 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            // The worker is looked for once (reading every /proc/*/cmdline is slow); the download is watched for often.
            if (worker == 0) worker = WorkerPids(spoolRoot, onlyCloudArchive: true).FirstOrDefault();
            if (worker != 0 && Directory.Exists(Path.Combine(spoolRoot, "prefetch")) && HiddenFiles(spoolRoot).Any(f => f.Contains("00000001")))
            {
                try
                {
                    using (var p = Process.GetProcessById(worker)) p.Kill();   // SIGKILL
                }
                catch (ArgumentException)
                {
                    worker = 0;   // it had ended (and any other is found next time round)
                    continue;
                }
                await WaitForPrefetchersAsync(spoolRoot);
                hidden = HiddenFiles(spoolRoot).Where(f => f.Contains("00000001")).ToList();
            }
            else await Task.Delay(1);
        }
        Assert.True(hidden.Count > 0, "the prefetcher was not caught mid-download");

        foreach (var name in SpooledNames(spoolRoot))
            Assert.Equal(TestSegments.Sha256(pushed[name]), TestSegments.Sha256File(Path.Combine(spoolRoot, "prefetch", name)));
        var interrupted = hidden.Select(h => h.TrimStart('.')[..24]).Where(n => !SpooledNames(spoolRoot).Contains(n)).Order(StringComparer.Ordinal).First();

        var r = await FetchAsync(store.Cli, dataDir, interrupted, "--prefetch", "32");

        Expect.Exit(r, 0);
        Assert.DoesNotContain(FromSpool, r.Stderr);
        Assert.True(r.Elapsed < TimeSpan.FromSeconds(10), $"took {r.Elapsed}: waited for a dead prefetcher");
        Assert.Equal(TestSegments.Sha256(pushed[interrupted]), TestSegments.Sha256(Restored(dataDir)));
        await WaitForPrefetchersAsync(spoolRoot);
        Assert.Empty(HiddenFiles(spoolRoot));
    }

    [Fact]
    public async Task ACorruptObjectIsNotSpooledAndItsFetchStopsRecovery()
    {
        var work = TestEnv.NewWorkDir("prefetch-corrupt");
        var store = new LocalStore(Path.Combine(work, "store"));
        var pushed = await PushAsync(store.Cli, work, Enumerable.Range(1, 4).Select(i => Seg(1, i)), seed: 700);
        var corrupt = Seg(1, 3);
        var stored = LocalStore.Read(store.ObjectPath(corrupt));
        stored.Bytes[stored.HeaderLength + stored.Content.Length / 2] ^= 0x20;
        await File.WriteAllBytesAsync(store.ObjectPath(corrupt), stored.Bytes);
        var (dataDir, spoolRoot) = DataDirectory(work, inRecovery: true);

        Expect.Exit(await FetchAsync(store.Cli, dataDir, Seg(1, 1), "--prefetch", "4"), 0);
        await WaitForPrefetchersAsync(spoolRoot);

        Assert.Contains(Seg(1, 2), SpooledNames(spoolRoot));
        Assert.DoesNotContain(corrupt, SpooledNames(spoolRoot));
        Assert.Empty(HiddenFiles(spoolRoot));
        Assert.Contains($"not prefetched {corrupt}", File.ReadAllText(Path.Combine(spoolRoot, "prefetch", "prefetch.log")));
        var second = await FetchAsync(store.Cli, dataDir, Seg(1, 2), "--prefetch", "4");
        Expect.Exit(second, 0);
        Assert.Contains(FromSpool, second.Stderr);
        Assert.Equal(pushed[Seg(1, 2)], Restored(dataDir));
        File.Delete(Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG"));

        var r = await FetchAsync(store.Cli, dataDir, corrupt, "--prefetch", "4");

        Expect.Exit(r, 200);
        Assert.Contains("corrupt", r.Stderr);
        Expect.NoStackTrace(r);
        Assert.Equal([".cloudarchive"], Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")).Select(Path.GetFileName));
    }

    public static TheoryData<string, string, int> BadSettings => new()
    {
        { "plain", "65", 2 },
        { "plain", "-1", 2 },
        { "plain", "four", 2 },
        // In archive recovery a misconfiguration stops recovery rather than looking like the end of the archive.
        { "recovery", "65", 200 },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public async Task ABadPrefetchValueIsOneLineAndADocumentedCode(string dir, string value, int expected)
    {
        var work = TestEnv.NewWorkDir("prefetch-bad");
        var store = new LocalStore(Path.Combine(work, "store"));
        await PushAsync(store.Cli, work, [Seg(1, 1)], seed: 800);
        var (dataDir, _) = DataDirectory(work, inRecovery: dir == "recovery");

        var r = await store.Cli.RunAsync(["wal-fetch", Seg(1, 1), "pg_wal/RECOVERYXLOG"], new Dictionary<string, string?> { ["CLOUDARCHIVE_PREFETCH"] = value }, dataDir);

        Expect.Exit(r, expected);
        Assert.Contains($"CLOUDARCHIVE_PREFETCH must be a whole number from 0 to 64, not '{value}'", r.StderrLines[0]);
        Assert.False(File.Exists(Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG")));
    }

    [Fact]
    public async Task WithoutASpoolPrefetchFetchesDirectlyAndSaysSo()
    {
        var work = TestEnv.NewWorkDir("prefetch-nospool");
        var store = new LocalStore(Path.Combine(work, "store"));
        var pushed = await PushAsync(store.Cli, work, [Seg(1, 1), Seg(1, 2)], seed: 900);
        var dest = Path.Combine(work, "dest");
        TestEnv.CreateDirectory(dest);

        // Not in a data directory (no PG_VERSION) and no --spool-dir.
        var r = await store.Cli.RunAsync(["wal-fetch", Seg(1, 1), Path.Combine(dest, "x"), "--prefetch", "4", "--log-level", "info"], null, dest);

        Expect.Exit(r, 0);
        Assert.Contains("no spool", r.Stderr);
        Assert.Equal(pushed[Seg(1, 1)], File.ReadAllBytes(Path.Combine(dest, "x")));
        Assert.Equal(["x"], Directory.EnumerateFileSystemEntries(dest).Select(Path.GetFileName));
    }

    /// <summary>The prefetch workers of a spool: from the shell that starts one to the worker itself (their arguments name the spool).</summary>
    private static List<int> WorkerPids(string spoolRoot, bool onlyCloudArchive = false)
    {
        var pids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string[] args;
            try { args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0'); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            if (args.Contains("wal-prefetch-worker") && args.Contains(spoolRoot) && (!onlyCloudArchive || args[0] == TestEnv.Binary)) pids.Add(pid);
        }
        return pids;
    }

    private static async Task WaitForPrefetchersAsync(string spoolRoot)
    {
        // Several empty looks in a row: a process's cmdline reads empty for an instant while it execs (sh, setsid, the worker).
        var idle = 0;
        for (var i = 0; i < 2000 && idle < 4; i++)
        {
            idle = WorkerPids(spoolRoot).Count == 0 ? idle + 1 : 0;
            await Task.Delay(30);
        }
        if (idle >= 4) return;
        throw new TimeoutException($"the prefetcher of {spoolRoot} did not finish in 60 s");
    }
}
