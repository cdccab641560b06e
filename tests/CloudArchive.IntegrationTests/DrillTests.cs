using System.Text.Json;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// drill against real archives of a real PostgreSQL 15: it restores, starts a private server, replays, checks and
/// records; a fault in the archive or a failing check fails it with its documented code; nothing is left running or on disk.
/// </summary>
public sealed class DrillTests
{
    /// <summary>A source with a backup and WAL after it, stopped once archived (or left running); the table's hash at the end.</summary>
    private static async Task<(Source Source, string Hash)> ArchiveAsync(string name, string storeKind, bool stop = true)
    {
        var s = await StartSourceAsync(name, storeKind);
        await s.Cluster.SqlAsync("insert into t select g, 'before ' || g from generate_series(1, 500) g");
        await BackupAsync(s);
        for (var i = 0; i < 3; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'after ' || g from generate_series({1000 + i * 200}, {1199 + i * 200}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var hash = await s.Cluster.SqlAsync(TableHash);
        if (stop) await s.Cluster.StopAsync();
        return (s, hash);
    }

    private static string DrillDir(Source s)
    {
        var dir = Path.Combine(s.Work, "drills");
        Directory.CreateDirectory(dir);
        if (TestEnv.IsRoot) Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", dir)).GetAwaiter().GetResult();
        return dir;
    }

    /// <summary>A drill as postgres with a --check that the restored rows are exactly the source's.</summary>
    private static Task<ProcResult> DrillAsync(Source s, string hash, params string[] more) =>
        CloudArchiveAsPostgres(s, ["drill", "--drill-dir", DrillDir(s), "--json", "--check", $"select ({TableHash}) = '{hash}'", .. more]);

    private static JsonElement Record(ProcResult r) => JsonDocument.Parse(r.Stdout).RootElement;

    /// <summary>Nothing of a drill is left: no directory under the drill dir, no server whose data directory was there.</summary>
    private static async Task AssertCleanedUpAsync(Source s)
    {
        Assert.Empty(Directory.GetFileSystemEntries(DrillDir(s)));
        var ps = await Proc.RunAsync("pgrep", "-f", "-a", Path.Combine(s.Work, "drills"));
        Assert.True(ps.ExitCode == 1, "a drill's server still runs: " + ps.Stdout);
    }

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task ADrillRestoresReplaysChecksAndRecordsItsResult(string storeKind)
    {
        // The source keeps running: the drill's server must not get in its way (a socket of its own, another port).
        var (s, hash) = await ArchiveAsync("drill-" + storeKind, storeKind, stop: false);
        await using var _ = s.Cluster;

        var r = await DrillAsync(s, hash);

        Assert.True(r.ExitCode == 0, r.ToString());
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        var d = Record(r);
        Assert.True(d.GetProperty("passed").GetBoolean());
        Assert.StartsWith("passed", d.GetProperty("amcheck").GetString());
        Assert.True(d.GetProperty("checks")[0].GetProperty("passed").GetBoolean());
        Assert.True(d.GetProperty("restoreSeconds").GetDouble() > 0 && d.GetProperty("downloadSeconds").GetDouble() > 0);
        Assert.True(d.GetProperty("dataAgeSeconds").GetDouble() is > 0 and < 600, r.Stdout);
        Assert.Matches("^[0-9A-F]+/[0-9A-F]+$", d.GetProperty("reachedLsn").GetString()!);
        Assert.Equal("t", await s.Cluster.SqlAsync("select true"));
        await AssertCleanedUpAsync(s);

        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Contains($"last drill     {d.GetProperty("id").GetString()} passed", status.Stdout);
        var metrics = await OperationsTests.PrometheusSamplesAsync((await CloudArchiveAsPostgres(s, "metrics")).Stdout);
        Assert.Equal(1, metrics[$"cloudarchive_drill_last_success{{store={s.Store.Url}}}"]);
        Assert.True(metrics[$"cloudarchive_drill_last_restore_seconds{{store={s.Store.Url}}}"] > 0);
    }

    [Fact]
    public async Task AFailingCheckACorruptBundleAndAMissingSegmentEachFailTheDrillWithTheirCodeAndLeaveNothingBehind()
    {
        var (s, hash) = await ArchiveAsync("drill-faults", "local");
        var store = new Uri(s.Store.Url).LocalPath;

        // A check that is not true: the server came up, the data is not what was expected.
        var check = await DrillAsync(s, "0:wrong");
        Assert.True(check.ExitCode == 11, check.ToString());
        Assert.Equal("check", Record(check).GetProperty("failedStage").GetString());
        Assert.Contains("check failed", check.Stderr);
        await AssertCleanedUpAsync(s);

        // One flipped byte in a backup bundle: the restore stops at it.
        var bundle = Directory.GetFiles(Path.Combine(store, "backups"), "*.tar.zst", SearchOption.AllDirectories).Order().First();
        var original = await File.ReadAllBytesAsync(bundle);
        var flipped = (byte[])original.Clone();
        flipped[flipped.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(bundle, flipped);
        var corrupt = await DrillAsync(s, hash);
        Assert.True(corrupt.ExitCode == 5, corrupt.ToString());
        Assert.Equal("restore", Record(corrupt).GetProperty("failedStage").GetString());
        await AssertCleanedUpAsync(s);
        await File.WriteAllBytesAsync(bundle, original);

        // A segment in the middle of the range removed (its record stays): replay must stop there, not pass as if the archive ended.
        var segments = Directory.GetFiles(Path.Combine(store, "wal", "00000001"), "????????????????????????.zst").Order().ToList();
        File.Delete(segments[^2]);
        var missing = await DrillAsync(s, hash);
        Assert.True(missing.ExitCode == 5, missing.ToString());
        Assert.Equal("recovery", Record(missing).GetProperty("failedStage").GetString());
        Assert.Contains(Path.GetFileName(segments[^2])[..24], missing.Stderr);
        await AssertCleanedUpAsync(s);

        // Its record removed too: the gap is in the manifest, and the drill names it before restoring anything.
        File.Delete(Path.Combine(store, "manifest", "wal", "00000001", Path.GetFileName(segments[^2])[..24] + ".json"));
        var gap = await DrillAsync(s, hash);
        Assert.True(gap.ExitCode == 8, gap.ToString());
        Assert.Equal("plan", Record(gap).GetProperty("failedStage").GetString());
        Assert.Contains($"the archive has a gap: segment {Path.GetFileName(segments[^2])[..24]} of timeline 1 is missing", gap.Stderr);
        await AssertCleanedUpAsync(s);

        // Every drill left its record; status shows the newest, failed.
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Contains($"last drill     {Record(gap).GetProperty("id").GetString()} FAILED at plan", status.Stdout);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(store, "manifest", "drills")).Length);
    }

    [Fact]
    public async Task SigtermStopsTheDrillsServerAndRemovesItsDirectory()
    {
        var (s, hash) = await ArchiveAsync("drill-sigterm", "local");
        var drills = DrillDir(s);
        // A check that takes 60 s: the drill is stopped while its server runs.
        var run = DrillAsync(s, hash, "--check", "select pg_sleep(60)::text = ''");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string? pid = null;
        while (pid is null && clock.Elapsed < TimeSpan.FromSeconds(60) && !run.IsCompleted)
        {
            await Task.Delay(100);
            if (Directory.GetFiles(drills, "postmaster.pid", SearchOption.AllDirectories).Length == 0) continue;
            var ps = await Proc.RunAsync("ps", "-C", "cloudarchive", "-o", "pid=,args=");
            pid = ps.Stdout.Split('\n').FirstOrDefault(l => l.Contains($"drill --drill-dir {drills}", StringComparison.Ordinal))?.Trim().Split(' ')[0];
        }
        await Task.Delay(TimeSpan.FromSeconds(3)); // into pg_amcheck or the 60 s check
        if (string.IsNullOrEmpty(pid)) Assert.Fail("the drill's server never ran: " + (run.IsCompleted ? (await run).ToString() : "still running"));

        await Proc.CheckAsync(Proc.RunAsync("kill", "-TERM", pid!));
        var r = await run;

        Assert.True(r.ExitCode == 143, r.ToString());
        Assert.Equal("interrupted", Record(r).GetProperty("failedStage").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(50), "the drill waited for its check instead of stopping");
        await AssertCleanedUpAsync(s);
    }
}
