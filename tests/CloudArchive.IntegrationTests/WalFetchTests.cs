namespace CloudArchive.IntegrationTests;

/// <summary>wal-fetch as restore_command: verified bytes or nothing, and exit codes PostgreSQL acts on correctly.</summary>
public sealed class WalFetchTests
{
    private const string Name = "000000010000000000000009";

    /// <summary>A store holding one pushed segment, and a data directory to restore into (restore_command's working directory).</summary>
    private static async Task<(LocalStore Store, byte[] Segment, string DataDir)> ArchiveOneAsync(string label)
    {
        var store = LocalStore.Create(label, out var work);
        var segment = TestSegments.Segment(Name, seed: 9);
        await store.Cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "source"), Name, segment));
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        return (store, segment, dataDir);
    }

    [Fact]
    public async Task RestoresTheOriginalBytesAndLeavesNothingElse()
    {
        var (store, segment, dataDir) = await ArchiveOneAsync("fetch-ok");

        // As PostgreSQL runs it: %p is relative to the data directory.
        var r = await store.Cli.RunAsync(["wal-fetch", Name, "pg_wal/RECOVERYXLOG"], null, dataDir);

        Expect.Exit(r, 0);
        Assert.Equal("", r.Stderr);
        Assert.Equal(segment, await File.ReadAllBytesAsync(Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG")));
        Assert.Equal(["RECOVERYXLOG"], Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task ReplacesAnExistingDestination()
    {
        var (store, segment, dataDir) = await ArchiveOneAsync("fetch-replace");
        var dest = Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG");
        await File.WriteAllTextAsync(dest, "left over from the previous restore_command");

        Expect.Exit(await store.Cli.RunAsync("wal-fetch", Name, dest), 0);

        Assert.Equal(segment, await File.ReadAllBytesAsync(dest));
        Assert.Single(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    [Fact]
    public async Task AMissingNameExitsOneAtOnceAndWritesNothing()
    {
        var (store, _, dataDir) = await ArchiveOneAsync("fetch-missing");

        var r = await store.Cli.RunAsync(["wal-fetch", "00000001000000000000000A", "pg_wal/RECOVERYXLOG"],
            new Dictionary<string, string?> { ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "30" }, dataDir);

        Expect.Exit(r, 1);
        Assert.DoesNotContain("retry", r.Stderr, StringComparison.OrdinalIgnoreCase);
        // "Did not retry": far below the 30 s retry budget.
        Assert.True(r.Elapsed < TimeSpan.FromSeconds(10), $"a missing file took {r.Elapsed}");
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    [Fact]
    public async Task AMissingHistoryFileExitsOne()
    {
        // PostgreSQL probes for the next timeline's history file at every recovery start.
        var (store, _, dataDir) = await ArchiveOneAsync("fetch-nohistory");
        var r = await store.Cli.RunAsync(["wal-fetch", "00000002.history", "pg_wal/RECOVERYHISTORY"], null, dataDir);
        Expect.Exit(r, 1);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    public enum Damage { FlippedByte, Truncated, TruncatedToHeader, ChecksumChanged }

    public enum Where { Recovery, StandbyWorkingDirectory, StandbyPgData }

    public static TheoryData<Damage, Where, int> CorruptCases()
    {
        var data = new TheoryData<Damage, Where, int>();
        foreach (var damage in Enum.GetValues<Damage>())
        {
            data.Add(damage, Where.Recovery, 200);
            data.Add(damage, Where.StandbyWorkingDirectory, 1);
            data.Add(damage, Where.StandbyPgData, 1);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CorruptCases))]
    public async Task ACorruptObjectIsNeverHandedOver(Damage damage, Where where, int expectedExit)
    {
        var (store, _, dataDir) = await ArchiveOneAsync("fetch-corrupt");
        var file = store.ObjectPath(Name);
        var stored = LocalStore.Read(file);
        var bytes = stored.Bytes;
        switch (damage)
        {
            case Damage.FlippedByte:
                bytes[stored.HeaderLength + stored.Content.Length / 2] ^= 0x20;
                break;
            case Damage.Truncated:
                bytes = bytes[..(stored.HeaderLength + stored.Content.Length / 2)];
                break;
            case Damage.TruncatedToHeader:
                bytes = bytes[..stored.HeaderLength];
                break;
            case Damage.ChecksumChanged:
                // The metadata claims other content: one hex digit of the recorded SHA-256 changed.
                var at = bytes.AsSpan(0, stored.HeaderLength).IndexOf(System.Text.Encoding.ASCII.GetBytes(stored.Metadata["sha256"]));
                Assert.True(at > 0);
                bytes[at] = (byte)(bytes[at] == (byte)'0' ? '1' : '0');
                break;
        }
        await File.WriteAllBytesAsync(file, bytes);

        string[] args = ["wal-fetch", Name, "pg_wal/RECOVERYXLOG"];
        var cwd = dataDir;
        switch (where)
        {
            case Where.StandbyWorkingDirectory:
                await File.WriteAllTextAsync(Path.Combine(dataDir, "standby.signal"), "");
                break;
            case Where.StandbyPgData:
                // Run from elsewhere, naming the data directory; the destination is then an absolute path.
                await File.WriteAllTextAsync(Path.Combine(dataDir, "standby.signal"), "");
                args = ["wal-fetch", Name, Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG"), "--pgdata", dataDir];
                cwd = Path.GetDirectoryName(dataDir);
                break;
        }

        var r = await store.Cli.RunAsync(args, null, cwd);

        Expect.Exit(r, expectedExit);
        Assert.Contains("corrupt", r.Stderr);
        Expect.NoStackTrace(r);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    public static TheoryData<string, string, int> InRecoveryCases => new()
    {
        // In a data directory in archive recovery (PG_VERSION and recovery.signal) every failure but "absent" stops recovery.
        { "recovery", "swapped", 200 },
        { "recovery", "nostore", 200 },
        { "recovery", "nodestdir", 200 },
        { "recovery", "missing", 1 },
        // A parse error is a misconfiguration too, wherever the subcommand stands among the arguments.
        { "recovery", "typo", 200 },
        { "recovery", "globalfirst", 200 },
        // On a standby a mistake keeps its own code; only store-side failures fall back with 1.
        { "standby", "swapped", 6 },
        { "standby", "nostore", 2 },
        { "standby", "missing", 1 },
        // Outside a data directory the documented codes stand.
        { "plain", "swapped", 6 },
        { "plain", "nostore", 2 },
        { "plain", "nodestdir", 6 },
        { "plain", "globalfirst", 2 },
    };

    [Theory]
    [MemberData(nameof(InRecoveryCases))]
    public async Task InArchiveRecoveryOnlyAbsentLooksAbsent(string dir, string mistake, int expectedExit)
    {
        var (store, _, dataDir) = await ArchiveOneAsync("fetch-policy");
        if (dir != "plain") await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        if (dir == "recovery") await File.WriteAllTextAsync(Path.Combine(dataDir, "recovery.signal"), "");
        if (dir == "standby") await File.WriteAllTextAsync(Path.Combine(dataDir, "standby.signal"), "");

        var r = mistake switch
        {
            "swapped" => await store.Cli.RunAsync(["wal-fetch", "pg_wal/RECOVERYXLOG", Name], null, dataDir),
            "nostore" => await Cli.RunBareAsync(["wal-fetch", Name, "pg_wal/RECOVERYXLOG"], cwd: dataDir),
            "nodestdir" => await store.Cli.RunAsync(["wal-fetch", Name, "pg_wal/missing/RECOVERYXLOG"], null, dataDir),
            "typo" => await store.Cli.RunAsync(["wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--typo"], null, dataDir),
            "globalfirst" => await store.Cli.RunAsync(["--log-level", "info", "wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--typo"], null, dataDir),
            _ => await store.Cli.RunAsync(["wal-fetch", "00000001000000000000000A", "pg_wal/RECOVERYXLOG"], null, dataDir),
        };

        Expect.Exit(r, expectedExit);
        Expect.NoStackTrace(r);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }

    /// <summary>A spool that others can write to could hand PostgreSQL their segments: it is not used, and the fetch goes direct.</summary>
    [Fact]
    public async Task ASpoolDirectoryOthersCanWriteToIsNotUsed()
    {
        var (store, segment, dataDir) = await ArchiveOneAsync("fetch-spool-open");
        await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        var spool = Path.Combine(Path.GetDirectoryName(dataDir)!, "spool");
        TestEnv.CreateDirectory(spool);
        File.SetUnixFileMode(spool, (UnixFileMode)0b111_111_111);

        var r = await store.Cli.RunAsync(["wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--prefetch", "2", "--spool-dir", spool], null, dataDir);

        Expect.Exit(r, 0);
        Assert.Contains($"spool directory {spool} can be written by other users", r.Stderr);
        Assert.Equal(segment, await File.ReadAllBytesAsync(Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(spool));
    }

    [Fact]
    public async Task AnObjectThatIsNotACloudArchiveObjectIsCorrupt()
    {
        var (store, _, dataDir) = await ArchiveOneAsync("fetch-foreign");
        await File.WriteAllTextAsync(store.ObjectPath(Name), "something another tool wrote here");

        var r = await store.Cli.RunAsync(["wal-fetch", Name, "pg_wal/RECOVERYXLOG"], null, dataDir);

        Expect.Exit(r, 200);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }
}
