namespace CloudArchive.IntegrationTests;

/// <summary>Each mistake gives one line on stderr, its documented exit code and no stack trace; nothing is stored.</summary>
public sealed class BadInputTests
{
    private const string Segment = "000000010000000000000001";

    private static (LocalStore Store, string Work) NewStore(string label)
    {
        var store = LocalStore.Create(label, out var work);
        TestEnv.CreateDirectory(store.Dir);
        return (store, work);
    }

    /// <summary>
    /// An option whose values are a fixed set is checked by the parser, before the store is read (a store that does not
    /// exist here would otherwise answer first, exit 4): one line naming the option and what it takes.
    /// </summary>
    [Theory]
    [InlineData("--type", "nope", "backup-push")]
    [InlineData("--target-action", "resume", "restore", "--to", "/nonexistent/target")]
    [InlineData("--archive-mode", "on", "restore", "--to", "/nonexistent/target")]
    [InlineData("--format", "tar", "dump-push", "--dbname", "postgres")]
    public async Task AValueNotAmongAnOptionsChoicesIsOneLineNamingItBeforeTheStoreIsRead(string option, string value, params string[] command)
    {
        var r = await Cli.RunBareAsync([.. command, option, value, "--store", "file:///nonexistent/store"]);
        var line = Expect.OneLineError(r, 2);
        Assert.StartsWith($"cloudarchive: error: {option}: Argument '{value}' not recognized. Must be one of:", line);
    }

    [Theory]
    [InlineData("wal-push", "{segment}")]
    [InlineData("wal-fetch", Segment, "{work}/out")]
    [InlineData("wal-list")]
    public async Task NoStoreConfiguredIsAUsageError(params string[] template)
    {
        var work = TestEnv.NewWorkDir("bad-nostore");
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1);
        var args = template.Select(a => a.Replace("{segment}", segment).Replace("{work}", work)).ToArray();

        var line = Expect.OneLineError(await Cli.RunBareAsync(args), 2);
        Assert.Contains("store", line);
        Assert.False(File.Exists(Path.Combine(work, "out")));
    }

    [Theory]
    [InlineData("nosuch://bucket/prefix")]
    [InlineData("ftp://host/dir")]
    [InlineData("file://relative/dir")]
    [InlineData("file://")]
    [InlineData("/absolute/path/without/scheme")]
    public async Task ABadStoreUrlIsAUsageError(string url)
    {
        var work = TestEnv.NewWorkDir("bad-url");
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1);
        var cli = new Cli(url);

        Expect.OneLineError(await cli.RunAsync(["wal-push", segment], null, work), 2);
        Expect.OneLineError(await cli.RunAsync(["wal-fetch", Segment, Path.Combine(work, "out")], null, work), 2);
        Expect.OneLineError(await cli.RunAsync(["wal-list"], null, work), 2);
        Assert.False(File.Exists(Path.Combine(work, "out")));
        Assert.Equal(["pg_wal"], Directory.EnumerateFileSystemEntries(work).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("notwal.txt")]
    [InlineData("00000001000000000000000a")]
    [InlineData("000000000000000000000001")]
    [InlineData("00000000.history")]
    [InlineData("RECOVERYXLOG")]
    public async Task AFileWhoseNameIsNotAWalNameIsInvalidInput(string name)
    {
        var (store, work) = NewStore("bad-name");
        var path = TestSegments.Write(Path.Combine(work, "pg_wal"), name, TestSegments.Segment(Segment, seed: 1));

        var line = Expect.OneLineError(await store.Cli.RunAsync("wal-push", path), 6);
        Assert.Contains(name, line);
        Assert.Empty(store.VisibleFiles());
    }

    [Theory]
    [InlineData("notwal.txt")]
    [InlineData("00000001000000000000000a")]
    [InlineData("../000000010000000000000001")]
    [InlineData("000000010000000000000001\n")]
    public async Task FetchingANameThatIsNotAWalNameIsInvalidInput(string name)
    {
        var (store, work) = NewStore("bad-fetchname");
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1));
        var dest = Path.Combine(work, "restore", "RECOVERYXLOG");
        TestEnv.CreateDirectory(Path.GetDirectoryName(dest)!);

        Expect.OneLineError(await store.Cli.RunAsync("wal-fetch", name, dest), 6);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(dest)!));
    }

    [Fact]
    public async Task AWalNamedFileWithGarbageIsInvalidInput()
    {
        var (store, work) = NewStore("bad-garbage");
        var garbage = new byte[TestSegments.OneMib];
        TestSegments.FillText(garbage, 1);
        var path = TestSegments.Write(Path.Combine(work, "pg_wal"), Segment, garbage);

        Expect.OneLineError(await store.Cli.RunAsync("wal-push", path), 6);
        Assert.Empty(store.VisibleFiles());
    }

    [Theory]
    [InlineData(TestSegments.OneMib - 8192)]
    [InlineData(TestSegments.OneMib + 1)]
    [InlineData(2 * TestSegments.OneMib)]
    [InlineData(100)]
    public async Task AWalSegmentOfTheWrongSizeIsInvalidInput(int size)
    {
        var (store, work) = NewStore("bad-size");
        var good = TestSegments.Segment(Segment, seed: 1); // its header says 1 MiB segments
        var content = new byte[size];
        good.AsSpan(0, Math.Min(size, good.Length)).CopyTo(content);
        var path = TestSegments.Write(Path.Combine(work, "pg_wal"), Segment, content);

        Expect.OneLineError(await store.Cli.RunAsync("wal-push", path), 6);
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task ASegmentWhoseHeaderDisagreesWithItsNameIsInvalidInput()
    {
        var (store, work) = NewStore("bad-lsn");
        // A valid segment 000000010000000000000002 renamed to ...03.
        var path = TestSegments.Write(Path.Combine(work, "pg_wal"), "000000010000000000000003", TestSegments.Segment("000000010000000000000002", seed: 1));

        var line = Expect.OneLineError(await store.Cli.RunAsync("wal-push", path), 6);
        Assert.Contains("0/200000", line);
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task AFileThatDoesNotExistIsInvalidInput()
    {
        var (store, work) = NewStore("bad-missing");
        Expect.OneLineError(await store.Cli.RunAsync("wal-push", Path.Combine(work, "pg_wal", Segment)), 6);
        Expect.OneLineError(await store.Cli.RunAsync("wal-push", Path.Combine(work, "no-such-dir", "00000002.history")), 6);
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task ADirectoryIsInvalidInput()
    {
        var (store, work) = NewStore("bad-dir");
        TestEnv.CreateDirectory(Path.Combine(work, "pg_wal", Segment));
        Expect.OneLineError(await store.Cli.RunAsync("wal-push", Path.Combine(work, "pg_wal", Segment)), 6);
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task AnUnreadableFileIsInvalidInput()
    {
        var (store, work) = NewStore("bad-unreadable");
        File.SetUnixFileMode(store.Dir, (UnixFileMode)0b111_111_111);
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1);
        File.SetUnixFileMode(path, UnixFileMode.None); // mode 000, owned by the test user (root)

        var r = await Cli.RunBareAsync(["wal-push", path, "--store", store.Url]);

        var line = Expect.OneLineError(r, 6);
        Assert.Contains("permission denied", line);
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task FetchIntoADirectoryThatDoesNotExistIsInvalidInput()
    {
        var (store, work) = NewStore("bad-destdir");
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1));

        var dest = Path.Combine(work, "no-such-dir", "RECOVERYXLOG");
        Expect.OneLineError(await store.Cli.RunAsync("wal-fetch", Segment, dest), 6);
        Assert.False(Directory.Exists(Path.GetDirectoryName(dest)));
    }

    [Theory]
    [InlineData("wal-push", "{segment}", "--bogus")]
    [InlineData("wal-push", "--bogus", "{segment}")]
    [InlineData("wal-push", "--bogus")]
    [InlineData("--bogus", "wal-list")]
    [InlineData("wal-list", "--bogus")]
    [InlineData("wal-list", "extra")]
    [InlineData("wal-push")]
    [InlineData("wal-push", "{segment}", "{segment}")]
    [InlineData("wal-fetch", Segment)]
    [InlineData("wal-fetch")]
    [InlineData("wal-push", "{segment}", "--compress-level")]
    [InlineData("no-such-command")]
    [InlineData]
    public async Task UnknownFlagsAndMissingArgumentsAreUsageErrors(params string[] template)
    {
        var (store, work) = NewStore("bad-usage");
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Segment, seed: 1);
        var args = template.Select(a => a.Replace("{segment}", segment)).ToArray();

        var r = await store.Cli.RunAsync(args);

        Expect.OneLineError(r, 2);
        Assert.Empty(store.VisibleFiles());
    }

    [Theory]
    [InlineData("stauts", "status")]
    [InlineData("--log-level", "info", "backup-lsit", "backup-list")]
    public async Task AMistypedCommandIsNamedWithTheNearestOne(params string[] argsAndNearest)
    {
        var (store, _) = NewStore("bad-command");

        var r = await store.Cli.RunAsync(argsAndNearest[..^1]);

        Assert.Contains($"unknown command '{argsAndNearest[^2]}' (did you mean '{argsAndNearest[^1]}'?)", Expect.OneLineError(r, 2));
    }

    [Fact]
    public async Task VerbosePrintsTheStackTrace()
    {
        var (store, work) = NewStore("bad-verbose");
        var r = await store.Cli.RunAsync("wal-push", Path.Combine(work, "pg_wal", Segment), "--verbose");

        Expect.Exit(r, 6);
        Assert.StartsWith("cloudarchive: error: ", r.StderrLines[0]);
        Assert.Contains(r.StderrLines, l => l.StartsWith("   at ", StringComparison.Ordinal));
    }
}
