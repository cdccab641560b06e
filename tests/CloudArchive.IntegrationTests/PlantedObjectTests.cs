using System.Formats.Tar;
using System.Text;
using System.Text.Json;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using ZstdSharp;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// A store that others can write to: objects planted in the local store's own format, as someone with write
/// access would plant them. Whatever they hold, the restoring host is not harmed: restores fail loudly and
/// nothing is written outside the directories the operator named.
/// </summary>
public sealed class PlantedObjectTests
{
    private static byte[] Zstd(byte[] content)
    {
        using var c = new Compressor(3);
        return c.Wrap(content).ToArray();
    }

    [Fact]
    public async Task PlantedWalObjectsNeverReachPgWal()
    {
        var store = LocalStore.Create("planted-wal", out var work);
        await store.Cli.OkAsync("store-init");
        // A real data directory in archive recovery: its pg_control says 16 MiB segments and its system identifier.
        await using var cluster = await PgCluster.InitAsync(Path.Combine(work, "pg"));
        await File.WriteAllTextAsync(Path.Combine(cluster.DataDir, "recovery.signal"), "");
        var systemId = (await Proc.CheckAsync(Proc.AsPostgresAsync(["/usr/lib/postgresql/15/bin/pg_controldata", cluster.DataDir])))
            .Stdout.Split('\n').First(l => l.StartsWith("Database system identifier:", StringComparison.Ordinal)).Split(':')[1].Trim();
        var pgWal = Path.Combine(cluster.DataDir, "pg_wal");
        var before = Directory.GetFileSystemEntries(pgWal).Order().ToList();
        var zeros64 = new byte[64 << 20];
        var sha64 = TestSegments.Sha256(zeros64);

        async Task<string> FetchRefusedAsync(string name, string because)
        {
            var r = await store.Cli.RunAsync(["wal-fetch", name, "pg_wal/RECOVERYXLOG"], null, cluster.DataDir);
            // In archive recovery: 200, so PostgreSQL stops instead of promoting at the wrong point.
            Expect.Exit(r, 200);
            Assert.Contains(because, r.Stderr);
            Expect.NoStackTrace(r);
            Assert.Equal(before, Directory.GetFileSystemEntries(pgWal).Order().ToList());
            return r.Stderr;
        }

        // A few KiB that inflate to 64 MiB, recorded as 64 MiB: not a segment of this cluster.
        const string big = "000000010000000000000003";
        store.Plant($"wal/00000001/{big}.zst", Zstd(zeros64), new() { ["sha256"] = sha64, ["size"] = (64 << 20).ToString(), ["compression"] = "zstd" });
        await FetchRefusedAsync(big, "this cluster's WAL segments are 16777216 bytes");

        // Recorded as one segment, but it decodes to four: stopped at the recorded size.
        const string liar = "000000010000000000000004";
        store.Plant($"wal/00000001/{liar}.zst", Zstd(zeros64), new() { ["sha256"] = sha64, ["size"] = (16 << 20).ToString(), ["compression"] = "zstd" });
        await FetchRefusedAsync(liar, "more than its 16777216 recorded bytes");

        // A history file of 64 MiB: far past what a history file holds.
        store.Plant("wal/00000002/00000002.history.zst", Zstd(zeros64), new() { ["sha256"] = sha64, ["size"] = (64 << 20).ToString(), ["compression"] = "zstd" });
        await FetchRefusedAsync("00000002.history", "more than a History file may hold");

        // A well-formed segment of another database system (another cluster sharing the store, or a planted one).
        const string other = "000000010000000000000005";
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "other"), other, seed: 5, size: 16 << 20));
        var stderr = await FetchRefusedAsync(other, $"belongs to database system {TestSegments.SystemId}, but the cluster in recovery is {systemId}");
        Assert.DoesNotContain(".cloudarchive-tmp", string.Join(' ', Directory.GetFileSystemEntries(pgWal)));
        // Outside a data directory there is nothing to compare with: the same object is handed out, verified.
        var outside = Path.Combine(work, "outside");
        TestEnv.CreateDirectory(outside);
        Expect.Exit(await store.Cli.RunAsync("wal-fetch", other, Path.Combine(outside, other)), 0);
        Assert.Contains("refusing", stderr, StringComparison.OrdinalIgnoreCase);
    }

    private const string Backup = "20261125T101010Z-f0f0f0";

    /// <summary>
    /// A store with one pushed segment (1 MiB, so the plan has WAL for the backup) and a planted backup whose record
    /// lists <paramref name="files"/> (all in one bundle that holds them) and <paramref name="tablespaces"/>.
    /// </summary>
    private static async Task<(LocalStore Store, string Work)> PlantBackupAsync(string label, (string Path, byte[] Content)[] files, params BackupTablespace[] tablespaces)
    {
        var store = LocalStore.Create(label, out var work);
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "wal"), "000000010000000000000001", seed: 1));

        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
            foreach (var (path, content) in files)
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, path) { DataStream = new MemoryStream(content) });
        var bundle = StoreLayout.BackupBundleKey(Backup, 0);
        store.Plant(bundle, Zstd(tar.ToArray()), new() { ["compression"] = "zstd" });
        var record = new BackupRecord
        {
            Id = Backup, SystemIdentifier = TestSegments.SystemId.ToString(), ServerVersionNum = 150000, Timeline = 1,
            StartLsn = "0/100028", StopLsn = "0/100100", StartWalFile = "000000010000000000000001", StopWalFile = "000000010000000000000001",
            StartTime = DateTimeOffset.UtcNow.AddMinutes(-1), StopTime = DateTimeOffset.UtcNow, WalSegmentSize = TestSegments.OneMib,
            BackupLabel = "START WAL LOCATION: 0/100028 (file 000000010000000000000001)\n", Compression = "zstd",
            Size = files.Sum(f => f.Content.Length), StoredSize = 1,
            Bundles = [new BackupBundle(bundle, tar.Length, 1)],
            Entries = files.Select(f => new BackupEntry(f.Path, 0, f.Content.Length, TestSegments.Sha256(f.Content), 384)).ToList(),
            Tablespaces = [.. tablespaces],
        };
        store.Plant(StoreLayout.BackupRecordKey(Backup), JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.BackupRecord), []);
        return (store, work);
    }

    [Theory]
    [InlineData("pg_tblspc/16385/../../escaped")]
    [InlineData("pg_tblspc/16385/../escaped")]
    [InlineData("base/../../escaped")]
    public async Task ABackupRecordWhosePathsClimbOutIsRefusedAndWritesNothing(string path)
    {
        var payload = Encoding.ASCII.GetBytes("* * * * * root id > /tmp/owned\n");
        var tsParent = TestEnv.NewWorkDir("planted-ts");
        var location = Path.Combine(tsParent, "ts");
        var (store, work) = await PlantBackupAsync("planted-path", [("PG_VERSION", "15\n"u8.ToArray()), (path, payload)],
            new BackupTablespace(16385, "evil", location));
        var to = Path.Combine(work, "restored");

        var r = await store.Cli.RunAsync("restore", "--to", to, "--tablespace-in-place");

        var line = Expect.OneLineError(r, 5);
        Assert.Contains(path, line);
        Assert.DoesNotContain("every checksum verified", r.Stdout);
        // Nothing written anywhere: not the restore directory, not the tablespace, not where the path points.
        Assert.False(Directory.Exists(to), "the restore directory was created");
        Assert.False(Directory.Exists(location), "the tablespace directory was created");
        Assert.Empty(Directory.GetFileSystemEntries(tsParent));
        Assert.False(File.Exists(Path.Combine(work, "escaped")));
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(work)!, "escaped")));
    }

    [Fact]
    public async Task ATablespaceOutsideTheRestoreDirectoryIsShownAndNeedsTheOperatorsWord()
    {
        var tsParent = TestEnv.NewWorkDir("planted-ts");
        var location = Path.Combine(tsParent, "ts");
        var data = "PG_15_202209061/5/16386"u8.ToArray();
        var (store, work) = await PlantBackupAsync("planted-ts", [("PG_VERSION", "15\n"u8.ToArray()), ("pg_tblspc/16385/PG_15_202209061/5/16386", data)],
            new BackupTablespace(16385, "fast", location));
        var to = Path.Combine(work, "restored");

        var plan = await store.Cli.RunAsync("plan");
        Expect.Exit(plan, 0);
        Assert.Contains($"tablespace   fast (OID 16385) at {location}", plan.Stdout);

        var refused = await store.Cli.RunAsync("restore", "--to", to);
        var line = Expect.OneLineError(refused, 2);
        Assert.Contains(location, line);
        Assert.Contains("--tablespace-in-place", line);
        Assert.False(Directory.Exists(to));
        Assert.False(Directory.Exists(location));

        var moved = Path.Combine(tsParent, "moved");
        var ok = await store.Cli.RunAsync("restore", "--to", to, "--tablespace-map", $"{location}={moved}");
        Expect.Exit(ok, 0);
        Assert.Contains($"tablespace fast (OID 16385) -> {moved} (moved from {location})", ok.Stdout);
        Assert.Equal(data, await File.ReadAllBytesAsync(Path.Combine(moved, "PG_15_202209061/5/16386")));
        Assert.Equal(moved, new DirectoryInfo(Path.Combine(to, "pg_tblspc", "16385")).LinkTarget);
        Assert.False(Directory.Exists(location));
    }

    [Fact]
    public async Task ABackupRecordNamingObjectsOutsideItsOwnIsRefused()
    {
        var (store, work) = await PlantBackupAsync("planted-key", [("PG_VERSION", "15\n"u8.ToArray())]);
        // The same record, now pointing its bundle at a WAL object of the store.
        var recordPath = Path.Combine(store.Dir, StoreLayout.BackupRecordKey(Backup));
        var json = LocalStore.Read(recordPath).ContentText.Replace(StoreLayout.BackupBundleKey(Backup, 0), "wal/00000001/000000010000000000000001.zst", StringComparison.Ordinal);
        File.Delete(recordPath);
        store.Plant(StoreLayout.BackupRecordKey(Backup), Encoding.UTF8.GetBytes(json), []);

        var r = await store.Cli.RunAsync("restore", "--to", Path.Combine(work, "restored"));

        Assert.Contains("forged", Expect.OneLineError(r, 5));
        Assert.False(Directory.Exists(Path.Combine(work, "restored")));
    }

    [Fact]
    public async Task ABackupWhoseFilesAreOfAnotherVersionThanItsRecordIsRefusedBeforeAnythingIsWritten()
    {
        // A record that says 15 over the data directory of a 13 (a record copied onto another backup's bundles).
        var (store, work) = await PlantBackupAsync("planted-version", [("PG_VERSION", "13\n"u8.ToArray()), ("base/1/1259", new byte[8192])]);
        var before = store.VisibleFiles();

        var r = await store.Cli.RunAsync("restore", "--to", Path.Combine(work, "restored"));

        var line = Expect.OneLineError(r, 5);
        Assert.Contains($"backup {Backup} does not match its own record: its record says PostgreSQL 15.0 but its PG_VERSION file is not \"15\"; nothing was restored", line);
        Assert.False(Directory.Exists(Path.Combine(work, "restored")));
        Assert.Equal(before, store.VisibleFiles()); // not even a restore lease
    }

    /// <summary>
    /// Records of incremental backups planted with nonsense in the fields a chain is built from: each is refused with one
    /// line before anything is written (exit 5 for a corrupt record, 8 for a chain that leads nowhere).
    /// </summary>
    [Theory]
    [InlineData("block size 0", 5)]
    [InlineData("block size 3000", 5)]
    [InlineData("blocks past the end", 5)]
    [InlineData("blocks backwards", 5)]
    [InlineData("incr without a reference", 5)]
    [InlineData("incr on a backup not in the store", 8)]
    [InlineData("incr on itself", 5)]
    public async Task APlantedIncrementalRecordWithNonsenseInItsChainIsRefusedAndWritesNothing(string nonsense, int exit)
    {
        var (store, work) = await PlantBackupAsync("planted-chain", [("PG_VERSION", "15\n"u8.ToArray()), ("base/1/1259", new byte[16384])]);
        var recordPath = Path.Combine(store.Dir, StoreLayout.BackupRecordKey(Backup));
        var record = System.Text.Json.Nodes.JsonNode.Parse(LocalStore.Read(recordPath).ContentText)!;
        var relation = record["entries"]!.AsArray().First(e => (string?)e!["path"] == "base/1/1259")!;
        switch (nonsense)
        {
            case "block size 0": record["blockSize"] = 0; break;
            case "block size 3000": record["blockSize"] = 3000; break;
            case "blocks past the end": record["blockSize"] = 8192; relation["blocks"] = true; relation["stored"] = "0-9"; break;
            case "blocks backwards": record["blockSize"] = 8192; relation["blocks"] = true; relation["stored"] = "1-0"; break;
            case "incr without a reference": record["blockSize"] = 8192; record["type"] = "incr"; break;
            case "incr on a backup not in the store": record["blockSize"] = 8192; record["type"] = "incr"; record["reference"] = "20261101T000000Z-aaaaaa"; break;
            case "incr on itself": record["blockSize"] = 8192; record["type"] = "incr"; record["reference"] = Backup; break;
        }
        File.Delete(recordPath);
        store.Plant(StoreLayout.BackupRecordKey(Backup), Encoding.UTF8.GetBytes(record.ToJsonString()), []);
        var to = Path.Combine(work, "restored");

        var r = await store.Cli.RunAsync("restore", "--to", to, "--backup", Backup);

        Expect.OneLineError(r, exit);
        Assert.False(Directory.Exists(to), r.ToString());
    }

    /// <summary>
    /// Text a planted record carries into what operators read (a backup's node in backup-list): control characters
    /// (a terminal escape, a line break that would forge another line) are never printed as they are.
    /// </summary>
    [Fact]
    public async Task APlantedBackupRecordsNodeCannotWriteToTheTerminal()
    {
        var (store, _) = await PlantBackupAsync("planted-node", [("PG_VERSION", "15\n"u8.ToArray())]);
        var recordPath = Path.Combine(store.Dir, StoreLayout.BackupRecordKey(Backup));
        var record = System.Text.Json.Nodes.JsonNode.Parse(LocalStore.Read(recordPath).ContentText)!;
        record["node"] = "standby db2\u001b[2J\nPROBLEM none: all good";
        File.Delete(recordPath);
        store.Plant(StoreLayout.BackupRecordKey(Backup), Encoding.UTF8.GetBytes(record.ToJsonString()), []);

        var r = await store.Cli.RunAsync("backup-list");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("\u001b", r.Stdout);
        Assert.Contains("on standby db2?[2J?PROBLEM none: all good", r.Stdout);
        Assert.DoesNotContain("\nPROBLEM", r.Stdout);
    }
}
