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
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
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
        // A store root took over (files 0640, directories 0750, owned by root) read by user postgres: permission denied, not "absent".
        var store = LocalStore.Create("fetch-denied", out var work);
        const string name = "000000010000000000000001";
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), name, seed: 1));
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        File.SetUnixFileMode(Path.Combine(dataDir, "pg_wal"), (UnixFileMode)0b111_111_111);
        if (standby) await File.WriteAllTextAsync(Path.Combine(dataDir, "standby.signal"), "");

        if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "-R", "root:root", store.Dir));
        else File.SetUnixFileMode(store.ObjectPath(name), UnixFileMode.None);

        var r = await Cli.RunBareAsync(["wal-fetch", name, "pg_wal/RECOVERYXLOG", "--store", store.Url, "--retry-timeout", "1"], cwd: dataDir);

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

        var r = await Cli.RunBareAsync(["wal-push", path, "--store", store.Url, "--retry-timeout", "1"]);

        Expect.OneLineError(r, 4);
        Assert.Empty(store.VisibleFiles());
    }


    [Theory]
    [InlineData(false, 200)]
    [InlineData(true, 1)]
    public async Task AnEmptyDirectoryWhereTheStoreShouldBeIsUnavailableNeverAbsent(bool standby, int expectedExit)
    {
        // The mount point of a volume that is not mounted: an empty directory. "Not in the archive" would promote.
        var work = TestEnv.NewWorkDir("fetch-unmounted");
        var store = new LocalStore(Path.Combine(work, "mnt"), create: false);
        TestEnv.CreateDirectory(store.Dir);
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
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
        TestEnv.CreateDirectory(Path.Combine(work, "mnt"));
        Expect.Exit(await store.Cli.RunAsync("store-init"), 0);
        Assert.True(File.Exists(Path.Combine(store.Dir, "cloudarchive-store.json")));
        await store.Cli.OkAsync("wal-push", path);
        Assert.Contains("already", (await store.Cli.RunAsync("store-init")).Stdout);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task NoWriteMakesAStoreOnlyStoreInitDoes(bool otherFiles)
    {
        // An unmounted volume's mount point is an empty directory, or one holding what was left on the root disk.
        var work = TestEnv.NewWorkDir("push-notastore");
        var store = new LocalStore(Path.Combine(work, "mnt"), create: false);
        LocalStore.MakeDirectory(store.Dir, init: false);
        if (otherFiles) await File.WriteAllTextAsync(Path.Combine(store.Dir, "notes.txt"), "not an archive");
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);

        var push = await Cli.RunBareAsync(["wal-push", path, "--store", store.Url]);

        var error = Expect.OneLineError(push, 4);
        Assert.Contains("is not a CloudArchive store", error);
        Assert.Contains("is its volume mounted?", error);
        Assert.Equal(otherFiles ? ["notes.txt"] : [], Directory.GetFileSystemEntries(store.Dir).Select(Path.GetFileName));
        // The operator's store-init makes it one; then pushes go in.
        await store.Cli.OkAsync("store-init");
        Expect.Exit(await Cli.RunBareAsync(["wal-push", path, "--store", store.Url]), 0);
    }

    /// <summary>
    /// A store on a volume of its own (here /dev/shm, a tmpfs) and a copy of it left on another file system (the root disk
    /// under an unmounted volume's mount point): the copy's marker names the volume's file system, so it takes no write
    /// (exit 4) and no segment goes where the volume hides it once mounted again. A store that really moved is adopted by
    /// setting its marker aside and running store-init, as the error says.
    /// </summary>
    [Fact]
    public async Task APushIntoACopyOfTheStoreOnAnotherFileSystemIsRefused()
    {
        var work = TestEnv.NewWorkDir("push-otherfs");
        var volume = TestEnv.SharedDir("/dev/shm", $"cloudarchive-{Guid.NewGuid():N}");
        try
        {
            var store = new LocalStore(Path.Combine(volume, "store"));
            var first = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);
            var second = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000002", seed: 2);
            await store.Cli.OkAsync("wal-push", first);
            var copy = new LocalStore(Path.Combine(work, "mnt"), create: false);
            await Proc.CheckAsync(Proc.RunAsync("cp", "-a", store.Dir, copy.Dir));
            var before = copy.VisibleFiles();

            Assert.Contains("another file system", Expect.OneLineError(await copy.Cli.RunAsync("wal-push", second), 4));
            Assert.Equal(before, copy.VisibleFiles());
            // Reads do not compare file systems: a restore host may mount the store anywhere.
            Expect.Exit(await copy.Cli.RunAsync("wal-fetch", "000000010000000000000001", Path.Combine(work, "fetched")), 0);

            var oldMarker = Path.Combine(work, "old-marker.json");
            File.Move(Path.Combine(copy.Dir, "cloudarchive-store.json"), oldMarker);
            // A new archive id would orphan the store's encrypted objects: store-init adopts only with the old marker's id.
            Assert.Contains("--archive-id", Expect.OneLineError(await copy.Cli.RunAsync("store-init"), 2));
            var id = System.Text.Json.JsonDocument.Parse(LocalStore.Read(oldMarker).Content).RootElement.GetProperty("archive").GetString()!;
            await copy.Cli.OkAsync("store-init", "--archive-id", id);
            Assert.Contains($"\"archive\":\"{id}\"", LocalStore.Read(Path.Combine(copy.Dir, "cloudarchive-store.json")).ContentText);
            await copy.Cli.OkAsync("wal-push", second);
        }
        finally
        {
            Directory.Delete(volume, recursive: true);
        }
    }
}
