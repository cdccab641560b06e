using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>What root leaves behind: a restore run as root gives every file to the cluster's user; a store root made refuses postgres with the path.</summary>
public sealed class RootTests
{
    /// <summary>
    /// restore as root into an empty directory postgres owns: every file, directory and link it writes belongs to
    /// postgres, so the server starts as postgres and holds the rows; the transcript says who got the files.
    /// </summary>
    [Fact]
    public async Task ARestoreRunAsRootLeavesEveryFileToTheDataDirectorysOwner()
    {
        Assert.True(TestEnv.IsRoot, "this test runs cloudarchive restore as root (as CI does)");
        var s = await StartSourceAsync("root-restore");
        await s.Cluster.SqlAsync("insert into t select g, 'row ' || g from generate_series(1, 300) g");
        await BackupAsync(s);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var dir = TestEnv.SharedDir(s.Work, "as-root");
        var data = Path.Combine(dir, "data");
        Directory.CreateDirectory(data);
        await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", data));
        File.SetUnixFileMode(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var r = await Proc.RunAsync(Proc.Info(TestEnv.Binary, ["restore", "--to", data, "--target-action", "promote", "--config", s.Store.ConfigFile]),
            TimeSpan.FromMinutes(5));

        Assert.True(r.ExitCode == 0, r.ToString());
        var postgres = (await Proc.RunAsync("id", "-u", "postgres")).Stdout.Trim();
        Assert.Contains($"ownership: run as root, every restored file was given to uid {postgres}", r.Stdout);
        var foreign = await Proc.RunAsync("find", data, "!", "-user", "postgres");
        Assert.True(foreign.ExitCode == 0 && foreign.Stdout.Trim() == "", "files not owned by postgres: " + foreign.Stdout);
        await using var restored = await PgCluster.AdoptAsync(dir, "archive_mode = off");
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        await s.Cluster.DisposeAsync();
    }

    /// <summary>A store root made (and owns) cannot take postgres's WAL: permission denied, the path, exit 4; never "internal error", never "stored".</summary>
    [Fact]
    public async Task AStoreRootMadeRefusesPostgresWithThePath()
    {
        Assert.True(TestEnv.IsRoot, "this test makes a store as root (as CI does)");
        var work = TestEnv.NewWorkDir("root-store");
        var storeDir = Path.Combine(work, "store");
        Directory.CreateDirectory(storeDir);
        var init = await Cli.ForLocalStore(storeDir).RunAsync("store-init");
        Assert.True(init.ExitCode == 0, init.ToString());
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);
        await Proc.CheckAsync(Proc.RunAsync("chmod", "-R", "a+rX", Path.Combine(work, "pg_wal")));

        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "wal-push", segment, "--store", "file://" + storeDir]);

        var line = Expect.OneLineError(r, 4);
        Assert.Contains("denied", line);
        Assert.Contains(storeDir, line);
        Assert.DoesNotContain("internal error", line);
        Assert.Empty(Directory.EnumerateFiles(storeDir, "*.zst", SearchOption.AllDirectories));
    }
}
