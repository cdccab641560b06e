using System.Diagnostics;
using System.Security.Cryptography;

namespace CloudArchive.IntegrationTests;

/// <summary>wal-push as archive_command: zstd, the SHA-256 in the manifest, the compression level, the never-overwrite rule.</summary>
public sealed class WalPushTests
{
    private static readonly byte[] ZstdMagic = [0x28, 0xB5, 0x2F, 0xFD];

    [Fact]
    public async Task StoresZstdAndRecordsTheChecksumAndLsns()
    {
        var store = LocalStore.Create("push-zstd", out var work);
        const string name = "000000010000000000000005";
        var segment = TestSegments.Segment(name, seed: 5);
        var path = TestSegments.Write(Path.Combine(work, "pg_wal"), name, segment);

        var r = await store.Cli.OkAsync("wal-push", path);
        Assert.Equal("", r.Stderr); // quiet on success: archive_command output goes to the server log

        var sha = Convert.ToHexStringLower(SHA256.HashData(segment));
        var obj = LocalStore.Read(store.ObjectPath(name));
        Assert.Equal(ZstdMagic, obj.Content[..4].ToArray());
        Assert.True(obj.Bytes.Length < segment.Length / 2, $"stored {obj.Bytes.Length} bytes for a {segment.Length}-byte segment");
        Assert.Equal(sha, obj.Metadata["sha256"]);
        Assert.Equal("zstd", obj.Metadata["compression"]);

        var record = store.Record(name);
        Assert.Equal(sha, record.GetProperty("sha256").GetString());
        Assert.Equal(name, record.GetProperty("name").GetString());
        Assert.Equal(1u, record.GetProperty("timeline").GetUInt32());
        Assert.Equal("0/500000", record.GetProperty("startLsn").GetString());
        Assert.Equal("0/600000", record.GetProperty("endLsn").GetString());
        Assert.Equal(TestSegments.OneMib, record.GetProperty("size").GetInt64());
        Assert.Equal(TestSegments.OneMib, record.GetProperty("segmentSize").GetInt64());
        Assert.Equal(TestSegments.SystemId.ToString(), record.GetProperty("systemIdentifier").GetString());
        Assert.Equal(obj.Content.Length, record.GetProperty("storedSize").GetInt64());

        // Archived WAL holds every row of the database: owner and group only.
        Assert.Equal((UnixFileMode)0b110_100_000, File.GetUnixFileMode(store.ObjectPath(name)));
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(Path.GetDirectoryName(store.ObjectPath(name))!));
        Assert.Empty(store.HiddenFiles());
    }

    [Fact]
    public async Task CompressLevelFlagAndVariableAreHonoured()
    {
        var work = TestEnv.NewWorkDir("push-level");
        const string name = "000000010000000000000001";
        var segment = TestSegments.Segment(name, seed: 11);
        var path = TestSegments.Write(Path.Combine(work, "pg_wal"), name, segment);

        async Task<int> StoredSize(string label, string[] extraArgs, Dictionary<string, string?>? env)
        {
            var store = new LocalStore(Path.Combine(work, label));
            var r = await store.Cli.RunAsync(["wal-push", path, .. extraArgs], env, null);
            Expect.Exit(r, 0);
            var fetched = Path.Combine(work, label + ".fetched");
            Expect.Exit(await store.Cli.RunAsync("wal-fetch", name, fetched), 0);
            Assert.Equal(segment, await File.ReadAllBytesAsync(fetched));
            return LocalStore.Read(store.ObjectPath(name)).Content.Length;
        }

        var flag1 = await StoredSize("flag1", ["--compress-level", "1"], null);
        var flag19 = await StoredSize("flag19", ["--compress-level", "19"], null);
        var env1 = await StoredSize("env1", [], new() { ["CLOUDARCHIVE_COMPRESS_LEVEL"] = "1" });
        var env19 = await StoredSize("env19", [], new() { ["CLOUDARCHIVE_COMPRESS_LEVEL"] = "19" });
        var flagOverEnv = await StoredSize("both", ["--compress-level", "19"], new() { ["CLOUDARCHIVE_COMPRESS_LEVEL"] = "1" });

        Assert.True(flag19 < flag1, $"level 19 stored {flag19} bytes, level 1 {flag1}");
        Assert.True(env19 < env1, $"CLOUDARCHIVE_COMPRESS_LEVEL=19 stored {env19} bytes, =1 {env1}");
        Assert.Equal(flag1, env1);
        Assert.Equal(flag19, env19);
        Assert.Equal(flag19, flagOverEnv);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("20")]
    [InlineData("-1")]
    [InlineData("3.5")]
    [InlineData("fast")]
    public async Task OutOfRangeCompressLevelIsAUsageError(string level)
    {
        var store = LocalStore.Create("push-badlevel", out var work);
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);

        Expect.OneLineError(await store.Cli.RunAsync(["wal-push", path, "--compress-level", level], null, null), 2);
        Expect.OneLineError(await store.Cli.RunAsync(["wal-push", path], new Dictionary<string, string?> { ["CLOUDARCHIVE_COMPRESS_LEVEL"] = level }, null), 2);
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task PushingIdenticalContentAgainIsANotice()
    {
        var store = LocalStore.Create("push-again", out var work);
        const string name = "000000010000000000000002";
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), name, seed: 2);
        await store.Cli.OkAsync("wal-push", path);
        var before = await File.ReadAllBytesAsync(store.ObjectPath(name));
        var recordBefore = await File.ReadAllBytesAsync(store.RecordPath(name));

        var r = await store.Cli.RunAsync("wal-push", path);

        Expect.Exit(r, 0);
        var line = Assert.Single(r.StderrLines);
        Assert.Contains("already archived", line);
        Assert.Contains(name, line);
        Assert.Equal(before, await File.ReadAllBytesAsync(store.ObjectPath(name)));
        Assert.Equal(recordBefore, await File.ReadAllBytesAsync(store.RecordPath(name)));
    }

    [Fact]
    public async Task ARetryAfterACrashBeforeTheManifestRecordCompletesIt()
    {
        // The state a push killed between its object and its manifest record leaves: the object alone.
        var store = LocalStore.Create("push-norecord", out var work);
        const string name = "000000010000000000000006";
        var path = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), name, seed: 6);
        await store.Cli.OkAsync("wal-push", path);
        File.Delete(store.RecordPath(name));
        Assert.DoesNotContain(name, (await store.Cli.OkAsync("wal-list")).Stdout);

        var r = await store.Cli.RunAsync("wal-push", path);

        Expect.Exit(r, 0);
        Assert.Contains("already archived", Assert.Single(r.StderrLines));
        Assert.Contains(name, (await store.Cli.OkAsync("wal-list")).Stdout);
        Assert.Equal(TestSegments.Sha256File(path), store.Record(name).GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task DifferentContentUnderAnArchivedNameIsRefused()
    {
        var store = LocalStore.Create("push-refuse", out var work);
        const string name = "000000010000000000000003";
        var original = TestSegments.Segment(name, seed: 1);
        await store.Cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "a"), name, original));
        var objectBefore = await File.ReadAllBytesAsync(store.ObjectPath(name));
        var recordBefore = await File.ReadAllBytesAsync(store.RecordPath(name));

        var r = await store.Cli.RunAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "b"), name, seed: 2));

        var line = Expect.OneLineError(r, 3);
        Assert.Contains(name, line);
        Assert.Equal(objectBefore, await File.ReadAllBytesAsync(store.ObjectPath(name)));
        Assert.Equal(recordBefore, await File.ReadAllBytesAsync(store.RecordPath(name)));
        Assert.Empty(store.HiddenFiles());

        var fetched = Path.Combine(work, "fetched");
        await store.Cli.OkAsync("wal-fetch", name, fetched);
        Assert.Equal(original, await File.ReadAllBytesAsync(fetched));
    }

    [Fact]
    public async Task ARefusalBetweenTwoClustersSaysSo()
    {
        var store = LocalStore.Create("push-twoclusters", out var work);
        const string name = "000000010000000000000004";
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "a"), name, seed: 1, systemId: 1111));

        var r = await store.Cli.RunAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "b"), name, seed: 1, systemId: 2222));

        var line = Expect.OneLineError(r, 3);
        Assert.Contains("1111", line);
        Assert.Contains("2222", line);
        // After pg_upgrade (a new system identifier) the refusal is the first thing the operator sees: it says what to do.
        Assert.Contains("made by pg_upgrade or initdb; after an upgrade run cloudarchive store-upgrade --pgdata DATADIR once", line);
    }

    [Fact]
    public async Task ConcurrentPushesOfOneNameHaveExactlyOneWinner()
    {
        const int pushers = 16;
        var store = LocalStore.Create("push-race", out var work);
        const string name = "000000010000000000000007";
        var contents = new byte[pushers][];
        var paths = new string[pushers];
        for (var i = 0; i < pushers; i++)
        {
            contents[i] = TestSegments.Segment(name, seed: 100 + i);
            paths[i] = TestSegments.Write(Path.Combine(work, $"pusher{i}"), name, contents[i]);
        }

        // All pushers wait on a shared flock that the test holds, so they start together once it is released.
        var gate = Path.Combine(work, "gate");
        var env = new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = store.Url };
        Task<ProcResult>[] runs;
        using (var held = new FileStream(gate, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            runs = paths.Select(p => Proc.RunAsync(Proc.AsClusterOwner(Proc.Info("flock", ["-s", gate, TestEnv.Binary, "wal-push", p], env)))).ToArray();
            await PollAsync(() => CountProcessesWaitingOn(gate) == pushers, TimeSpan.FromSeconds(30));
            Assert.True(runs.All(t => !t.IsCompleted) && store.VisibleFiles().Count == 0, "a pusher ran before the gate opened");
        }
        var results = await Task.WhenAll(runs);

        var winners = Enumerable.Range(0, pushers).Where(i => results[i].ExitCode == 0).ToList();
        var report = string.Join("\n", results.Select((r, i) => $"pusher {i}: {r}"));
        Assert.True(winners.Count == 1, $"{winners.Count} pushers exited 0:\n{report}");
        Assert.True(results.Count(r => r.ExitCode == 3) == pushers - 1, report);
        foreach (var loser in results.Where(r => r.ExitCode == 3)) Expect.OneLineError(loser, 3);

        Assert.Equal([Path.Combine("manifest", "wal", "00000001", name + ".json"), Path.Combine("wal", "00000001", name + ".zst")], store.VisibleFiles());
        Assert.Empty(store.HiddenFiles());
        var fetched = Path.Combine(work, "fetched");
        await store.Cli.OkAsync("wal-fetch", name, fetched);
        Assert.Equal(contents[winners[0]], await File.ReadAllBytesAsync(fetched));
        Assert.Equal(TestSegments.Sha256(contents[winners[0]]), store.Record(name).GetProperty("sha256").GetString());
    }

    private static int CountProcessesWaitingOn(string gate)
    {
        var count = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (cmdline.StartsWith("flock\0", StringComparison.Ordinal) && cmdline.Contains("\0" + gate + "\0", StringComparison.Ordinal)) count++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return count;
    }

    internal static async Task PollAsync(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException("condition not met in " + timeout);
            await Task.Delay(20);
        }
    }
}
