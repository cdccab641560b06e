using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// What root may do: every command that writes to the store or a cluster refuses root with one line (exit 2) and
/// leaves nothing behind; the readers and restore still serve root, and a restore run as root gives every file to the
/// cluster's user; a store root owns refuses postgres with the path.
/// </summary>
public sealed class RootTests
{
    private const string Segment = "000000010000000000000001";

    /// <summary>Each writing command with arguments it would otherwise run with (the paths under WORK, the segment pushed before).</summary>
    public static TheoryData<string[]> Writers => new()
    {
        new[] { "wal-push", "WORK/pg_wal/" + Segment },
        new[] { "wal-push", "WORK/pg_wal/" + Segment, "--async", "--spool-dir", "WORK/spool" },
        new[] { "wal-push-worker", "WORK/pg_wal/" + Segment },
        new[] { "wal-fetch", Segment, "WORK/pg_wal/RECOVERYXLOG" },
        new[] { "wal-fetch", Segment, "WORK/pg_wal/RECOVERYXLOG", "--prefetch", "2", "--spool-dir", "WORK/spool" },
        new[] { "wal-prefetch-worker", Segment, "--segment-size", "1048576", "--prefetch", "2", "--spool-dir", "WORK/spool" },
        new[] { "wal-agent", "--spool-dir", "WORK/spool" },
        new[] { "backup-push", "--pgdata", "WORK/data" },
        new[] { "dump-push", "--dbname", "postgres" },
        new[] { "dump-restore", "latest", "--dbname", "postgres" },
        new[] { "store-init" },
        new[] { "store-check" },
        new[] { "store-upgrade", "--pgdata", "WORK/data" },
        new[] { "check", "--pgdata", "WORK/data" },
        new[] { "expire", "--retain-full", "1" },
        new[] { "drill" },
        new[] { "copy", "--to", "file://WORK/second" },
    };

    /// <summary>
    /// Run as root, a command that writes to the store or a cluster says in one line to run it as the cluster's owner,
    /// exits 2, and changes nothing: the store's files and their owners are as they were, no spool and no %p appear.
    /// </summary>
    [Theory]
    [MemberData(nameof(Writers))]
    public async Task EveryCommandThatWritesRefusesRootInOneLineAndLeavesNothingBehind(string[] command)
    {
        var (store, work) = await StoreWithOneSegmentAsync("root-refused");
        var before = Listing(store.Dir);
        var walBefore = Listing(Path.Combine(work, "pg_wal"));

        var r = await store.Cli.RunAsRootAsync([.. command.Select(a => a.Replace("WORK", work, StringComparison.Ordinal))]);

        var line = Expect.OneLineError(r, 2);
        Assert.Equal($"cloudarchive: error: {command[0]} must not run as root (the cluster's user could not read or remove what root writes): " +
            $"run it as the PostgreSQL cluster's owner, for example: runuser -u postgres -- cloudarchive {command[0]} ...", line);
        Assert.Equal("", r.Stdout);
        Assert.Equal(before, Listing(store.Dir));
        Assert.Equal(walBefore, Listing(Path.Combine(work, "pg_wal")));
        Assert.False(Directory.Exists(Path.Combine(work, "spool")), "root made a spool");
        Assert.False(Directory.Exists(Path.Combine(work, "second")), "root made a second store");
    }

    /// <summary>
    /// restore_command run as root inside a data directory in archive recovery: the refusal stops recovery (200), it never
    /// looks like "not archived" (1 to 125), which would end recovery and promote at that point; outside recovery it is usage (2).
    /// </summary>
    [Theory]
    [InlineData(true, 200)]
    [InlineData(false, 2)]
    public async Task WalFetchRunAsRootInArchiveRecoveryStopsRecovery(bool inRecovery, int expectedExit)
    {
        var (store, work) = await StoreWithOneSegmentAsync("root-fetch");
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        if (inRecovery)
        {
            await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
            await File.WriteAllTextAsync(Path.Combine(dataDir, "recovery.signal"), "");
        }

        var r = await store.Cli.RunAsRootAsync(["wal-fetch", Segment, "pg_wal/RECOVERYXLOG"], dataDir);

        Expect.Exit(r, expectedExit);
        Assert.Contains("cloudarchive: error: wal-fetch must not run as root", r.StderrLines[0]);
        Expect.NoStackTrace(r);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    /// <summary>The commands that only read the store serve root as before, and leave the store as it was.</summary>
    [Theory]
    [InlineData("status")]
    [InlineData("wal-list")]
    [InlineData("backup-list")]
    [InlineData("verify")]
    [InlineData("config")]
    public async Task ReadersStillServeRoot(string command)
    {
        var (store, _) = await StoreWithOneSegmentAsync("root-reader");
        var before = Listing(store.Dir);

        var r = await store.Cli.RunAsRootAsync([command]);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("must not run as root", r.Stderr);
        if (command is "status" or "wal-list") Assert.Contains(Segment, r.Stdout);
        Assert.Equal(before, Listing(store.Dir));
    }

    /// <summary>
    /// restore as root into an empty directory postgres owns: every file, directory and link it writes belongs to
    /// postgres, so the server starts as postgres and holds the rows; the transcript says who got the files. The lease it
    /// writes into the (local) store is the store owner's too.
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
        // Its lease in the store too: else postgres's expire could not remove it, nor another restore lease the same backup.
        var store = new Uri(s.Store.Url).LocalPath;
        Assert.NotEmpty(Directory.EnumerateFiles(Path.Combine(store, "leases"), "*", SearchOption.AllDirectories));
        var rootsInStore = await Proc.RunAsync("find", store, "!", "-user", "postgres");
        Assert.True(rootsInStore.ExitCode == 0 && rootsInStore.Stdout.Trim() == "", "store files not owned by postgres: " + rootsInStore.Stdout);
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
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1);

        var r = await Cli.RunBareAsync(["wal-push", segment, "--store", store.Url]);

        var line = Expect.OneLineError(r, 4);
        Assert.Contains("denied", line);
        Assert.Contains(store.Dir, line);
        Assert.DoesNotContain("internal error", line);
        Assert.Empty(Directory.EnumerateFiles(store.Dir, "*.zst", SearchOption.AllDirectories));
    }

    /// <summary>A local store that holds one segment, pushed by the cluster's owner from WORK/pg_wal.</summary>
    private static async Task<(LocalStore Store, string Work)> StoreWithOneSegmentAsync(string name)
    {
        var store = LocalStore.Create(name, out var work);
        TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1);
        await store.Cli.OkAsync("wal-push", Path.Combine(work, "pg_wal", Segment));
        return (store, work);
    }

    /// <summary>Every file and directory under <paramref name="dir"/>: its path, owner, size and content's time, sorted.</summary>
    private static List<string> Listing(string dir) => !Directory.Exists(dir) ? [] :
        new DirectoryInfo(dir).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(e => $"{Path.GetRelativePath(dir, e.FullName)} uid {CloudArchive.Native.Posix.OwnerOf(e.FullName)} " +
                $"{(e is FileInfo f ? f.Length : -1)} {e.LastWriteTimeUtc:O}")
            .Order(StringComparer.Ordinal)
            .ToList();
}
