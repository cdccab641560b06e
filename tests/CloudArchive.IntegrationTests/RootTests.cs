using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>What root leaves behind: a restore run as root gives every file to the cluster's user; a store root owns refuses postgres with the path.</summary>
public sealed class RootTests
{
    /// <summary>
    /// restore as root into an empty directory postgres owns: every file, directory and link it writes belongs to
    /// postgres, so the server starts as postgres and holds the rows; the transcript says who got the files.
    /// </summary>
    [Fact]
    public async Task ARestoreRunAsRootLeavesEveryFileToTheDataDirectorysOwner()
    {
        var s = await StartSourceAsync("root-restore");
        await s.Cluster.SqlAsync("insert into t select g, 'row ' || g from generate_series(1, 300) g");
        await BackupAsync(s);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var dir = TestEnv.SharedDir(s.Work, "as-root");
        var data = Path.Combine(dir, "data");
        TestEnv.CreateDirectory(data);
        File.SetUnixFileMode(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var r = await Proc.RunAsync(Proc.CloudarchiveAsRoot(["restore", "--to", data, "--target-action", "promote", "--config", s.Store.ConfigFile]),
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

    /// <summary>
    /// A store root took over (a copy made as root, or what an older cloudarchive wrote as root) cannot take postgres's
    /// WAL: permission denied, the path, exit 4; never "internal error", never "stored".
    /// </summary>
    [Fact]
    public async Task AStoreRootOwnsRefusesPostgresWithThePath()
    {
        var store = LocalStore.Create("root-store", out var work);
        await Proc.CheckAsync(Proc.RunAsync("chown", "-R", "root:root", store.Dir));
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);

        var r = await Cli.RunBareAsync(["wal-push", segment, "--store", store.Url]);

        var line = Expect.OneLineError(r, 4);
        Assert.Contains("denied", line);
        Assert.Contains(store.Dir, line);
        Assert.DoesNotContain("internal error", line);
        Assert.Empty(Directory.EnumerateFiles(store.Dir, "*.zst", SearchOption.AllDirectories));
    }
}
