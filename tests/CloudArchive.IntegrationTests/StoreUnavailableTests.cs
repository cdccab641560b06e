namespace CloudArchive.IntegrationTests;

/// <summary>A store that cannot be reached or written must never look like "file not archived".</summary>
public sealed class StoreUnavailableTests
{
    private static readonly Dictionary<string, string?> OneSecond = new() { ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "1" };

    [Theory]
    [InlineData(false, 200)]
    [InlineData(true, 1)]
    public async Task FetchFromAStoreDirectoryThatIsMissingStopsRecoveryAtOnce(bool standby, int expectedExit)
    {
        var work = TestEnv.NewWorkDir("fetch-unreachable");
        var store = new LocalStore(Path.Combine(work, "not-mounted", "store"), create: false);
        var dataDir = Path.Combine(work, "data");
        Directory.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        if (standby) await File.WriteAllTextAsync(Path.Combine(dataDir, "standby.signal"), "");

        var r = await store.Cli.RunAsync(["wal-fetch", "000000010000000000000001", "pg_wal/RECOVERYXLOG"], OneSecond, dataDir);

        Expect.Exit(r, expectedExit);
        Assert.Contains($"store directory {store.Dir} does not exist (not mounted?)", r.Stderr);
        Assert.DoesNotContain("retrying", r.Stderr);
        Expect.NoStackTrace(r);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
        Assert.False(Directory.Exists(store.Dir));
    }

    [Theory]
    [InlineData(false, 200)]
    [InlineData(true, 1)]
    public async Task FetchWithoutPermissionToReadTheStoreStopsRecovery(bool standby, int expectedExit)
    {
        // A store written by root (files 0640, directories 0750) read by user postgres: permission denied, not "absent".
        var store = LocalStore.Create("fetch-denied", out var work);
        const string name = "000000010000000000000001";
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), name, seed: 1));
        var dataDir = Path.Combine(work, "data");
        Directory.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        File.SetUnixFileMode(Path.Combine(dataDir, "pg_wal"), (UnixFileMode)0b111_111_111);
        if (standby) await File.WriteAllTextAsync(Path.Combine(dataDir, "standby.signal"), "");

        if (!TestEnv.IsRoot) File.SetUnixFileMode(store.ObjectPath(name), UnixFileMode.None);

        var r = await RunAsPostgresOrSelfAsync(["wal-fetch", name, "pg_wal/RECOVERYXLOG", "--store", store.Url, "--retry-timeout", "1"], dataDir);

        Expect.Exit(r, expectedExit);
        Assert.Contains("permission denied", r.Stderr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    [Fact]
    public async Task ListingAnUnreachableStoreIsStoreUnavailable()
    {
        var work = TestEnv.NewWorkDir("list-unreachable");
        var store = new LocalStore(Path.Combine(work, "not-mounted", "store"), create: false);
        var r = await store.Cli.RunAsync(["wal-list"], OneSecond, null);
        Expect.Exit(r, 4);
        Assert.Equal("", r.Stdout);
        Assert.DoesNotContain("no WAL archived", r.Stdout);
    }

    [Fact]
    public async Task PushToAStoreThatCannotBeCreatedExitsFour()
    {
        var work = TestEnv.NewWorkDir("push-unwritable");
        var blocker = Path.Combine(work, "a-file");
        await File.WriteAllTextAsync(blocker, "not a directory");
        var store = new LocalStore(Path.Combine(blocker, "store"), create: false);
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);

        var r = await store.Cli.RunAsync(["wal-push", path], OneSecond, null);

        Expect.OneLineError(r, 4);
        Assert.Equal("not a directory", await File.ReadAllTextAsync(blocker));
    }

    [Fact]
    public async Task PushToAStoreThatIsNotWritableExitsFour()
    {
        // Run as user postgres (archive_command's user): a store directory of mode 0555 cannot be written.
        var work = TestEnv.NewWorkDir("push-readonly");
        var store = new LocalStore(Path.Combine(work, "store"));
        File.SetUnixFileMode(store.Dir, (UnixFileMode)0b101_101_101);
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);
        File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);

        var r = await RunAsPostgresOrSelfAsync(["wal-push", path, "--store", store.Url, "--retry-timeout", "1"]);

        Expect.OneLineError(r, 4);
        Assert.Empty(Directory.EnumerateFileSystemEntries(store.Dir));
    }

    /// <summary>Runs the binary as user postgres when the tests run as root (root may write anywhere), else as this user.</summary>
    internal static Task<ProcResult> RunAsPostgresOrSelfAsync(string[] args, string? cwd = null) =>
        TestEnv.IsRoot
            ? Proc.RunAsync(Proc.Info("runuser", ["-u", "postgres", "--", TestEnv.Binary, .. args], cwd: cwd))
            : Cli.RunBareAsync(args, cwd: cwd);

    [Theory]
    [InlineData(false, 200)]
    [InlineData(true, 1)]
    public async Task AnEmptyDirectoryWhereTheStoreShouldBeIsUnavailableNeverAbsent(bool standby, int expectedExit)
    {
        // The mount point of a volume that is not mounted: an empty directory. "Not in the archive" would promote.
        var work = TestEnv.NewWorkDir("fetch-unmounted");
        var store = new LocalStore(Path.Combine(work, "mnt"));
        var dataDir = Path.Combine(work, "data");
        Directory.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        await File.WriteAllTextAsync(Path.Combine(dataDir, standby ? "standby.signal" : "recovery.signal"), "");

        var r = await store.Cli.RunAsync(["wal-fetch", "000000010000000000000001", "pg_wal/RECOVERYXLOG"], null, dataDir);

        Expect.Exit(r, expectedExit);
        Assert.Contains("is not a CloudArchive store", r.Stderr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(store.Dir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
        var list = await store.Cli.RunAsync("backup-list");
        Assert.Contains("is not a CloudArchive store", Expect.OneLineError(list, 4));
    }

    [Fact]
    public async Task PushNeverCreatesTheStoreDirectoryOrItsParentsAndStoreInitDoes()
    {
        var work = TestEnv.NewWorkDir("push-unmounted");
        var store = new LocalStore(Path.Combine(work, "mnt", "archive"), create: false);
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);

        var r = await store.Cli.RunAsync("wal-push", path);

        Assert.Contains("does not exist (not mounted?)", Expect.OneLineError(r, 4));
        Assert.False(Directory.Exists(Path.Combine(work, "mnt")));
        // store-init creates the directory itself, never its parents.
        Expect.OneLineError(await store.Cli.RunAsync("store-init"), 4);
        Directory.CreateDirectory(Path.Combine(work, "mnt"));
        Expect.Exit(await store.Cli.RunAsync("store-init"), 0);
        Assert.True(File.Exists(Path.Combine(store.Dir, "cloudarchive-store.json")));
        await store.Cli.OkAsync("wal-push", path);
        Assert.Contains("already", (await store.Cli.RunAsync("store-init")).Stdout);
    }

    [Fact]
    public async Task PushIntoADirectoryHoldingOtherFilesIsRefused()
    {
        var work = TestEnv.NewWorkDir("push-foreign");
        var store = new LocalStore(Path.Combine(work, "home"));
        await File.WriteAllTextAsync(Path.Combine(store.Dir, "notes.txt"), "not an archive");
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);

        Assert.Contains("holds other files (notes.txt)", Expect.OneLineError(await store.Cli.RunAsync("wal-push", path), 4));
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(store.Dir).Select(Path.GetFileName));
    }
}
