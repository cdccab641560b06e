using System.Security.Cryptography;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Tests;

/// <summary>
/// The bundle format's round trip on the in-memory store: what <see cref="BundleWriter"/> writes of a data directory,
/// <see cref="BundleExtractor"/> gives back file for file; an incremental stores only the blocks that changed (a file it
/// did not change not at all, a new one whole) and its chain restores the directory as it was at that backup, truncated
/// and removed files included.
/// </summary>
public sealed class BundleWriterTests : IDisposable
{
    private const int BlockSize = 8192;
    private const string FullId = "20261125T100000Z-aaaa01";
    private const string IncrId = "20261125T110000Z-bbbb02";
    private readonly string _dir = Directory.CreateTempSubdirectory("bundle-writer-").FullName;
    private readonly InMemoryObjectStore _store = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PgData => Path.Combine(_dir, "pgdata");

    private static readonly string[] Directories = ["base", "base/1", "global"];

    private void Write(string path, byte[] content)
    {
        var full = Path.Combine(PgData, path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllBytes(full, content);
    }

    private Dictionary<string, byte[]> Current() =>
        Directory.EnumerateFiles(PgData, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(PgData, f).Replace('\\', '/'), File.ReadAllBytes, StringComparer.Ordinal);

    /// <summary>Backs up the data directory as it is now, in two bundles; <paramref name="reference"/>: an incremental on it.</summary>
    private async Task<BackupRecord> BackupAsync(string id, BackupRecord? reference, DateTimeOffset at, WalSummaryPlan? summaries = null)
    {
        var chain = reference is null ? null : new ChainMaps(_store, BackupChain.Resolve(reference, [reference]));
        var writer = new BundleWriter(_store, id, 3, BlockSize, chain, summaries: summaries);
        var files = Current().Keys.Order(StringComparer.Ordinal).ToList();
        var halves = new[] { files.Take(files.Count / 2).ToList(), files.Skip(files.Count / 2).ToList() };
        var bundles = new List<WrittenBundle>();
        for (var i = 0; i < halves.Length; i++)
            bundles.Add(await writer.WriteAsync(i, async bundle =>
            {
                if (i == 0) foreach (var d in Directories) await bundle.AddDirectoryAsync(d, 0x1c0, CancellationToken.None);
                foreach (var path in halves[i])
                {
                    await using var file = File.OpenRead(Path.Combine(PgData, path));
                    await bundle.AddFileAsync(path, 0x180, file, file.Length, CancellationToken.None);
                }
            }, CancellationToken.None));
        return new BackupRecord
        {
            Id = id, SystemIdentifier = "7", ServerVersionNum = 170000, Timeline = 1, StartLsn = "0/2000028", StopLsn = "0/2000100",
            StartWalFile = "000000010000000000000002", StopWalFile = "000000010000000000000002", StartTime = at, StopTime = at.AddMinutes(1),
            WalSegmentSize = 16 << 20, BackupLabel = "", Compression = "zstd",
            Size = bundles.Sum(b => b.Bundle.Size), StoredSize = bundles.Sum(b => b.Bundle.StoredSize),
            Bundles = bundles.Select(b => b.Bundle).ToList(), Entries = bundles.SelectMany(b => b.Entries).ToList(), Tablespaces = [],
            Type = reference is null ? BackupKinds.Full : BackupKinds.Incr, Reference = reference?.Id, BlockSize = BlockSize,
        };
    }

    /// <summary>Extracts <paramref name="backup"/>'s chain (its members among <paramref name="all"/>) into a new directory; returns its files.</summary>
    private async Task<Dictionary<string, byte[]>> ExtractAsync(BackupRecord backup, params BackupRecord[] all)
    {
        var to = Path.Combine(_dir, "restored-" + backup.Id);
        // As a restore does: every file created first at its size (one no bundle holds a block of, empty, too).
        foreach (var file in backup.Entries.Where(e => e.Sha256 is not null))
        {
            var path = Path.Combine(to, file.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using var created = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            if (file.Blocks) created.SetLength(file.Size);
        }
        var sink = new FileSink(to);
        var extractor = new BundleExtractor(_store);
        foreach (var task in BackupChain.Resolve(backup, all).Plan())
            await extractor.ExtractAsync(task, sink, null, CancellationToken.None);
        return Directory.EnumerateFiles(to, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(to, f).Replace('\\', '/'), File.ReadAllBytes, StringComparer.Ordinal);
    }

    private static void AssertSameFiles(Dictionary<string, byte[]> expected, Dictionary<string, byte[]> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (path, content) in expected)
            Assert.True(content.AsSpan().SequenceEqual(actual[path]), $"{path} did not come back as it was backed up");
    }

    private void WriteCluster()
    {
        Write("PG_VERSION", "17\n"u8.ToArray());
        Write("postgresql.conf", "shared_buffers = 128MB\n"u8.ToArray());
        Write("global/pg_control", RandomNumberGenerator.GetBytes(BlockSize));
        Write("base/1/16384", RandomNumberGenerator.GetBytes(10 * BlockSize));
        Write("base/1/16385", RandomNumberGenerator.GetBytes(6 * BlockSize));
        Write("base/1/16386", RandomNumberGenerator.GetBytes(4 * BlockSize));
        Write("base/1/16388", []);
    }

    [Fact]
    public async Task AFullBackupsBundlesGiveBackEveryFileWithItsBlockMaps()
    {
        WriteCluster();
        var backedUp = Current();

        var full = await BackupAsync(FullId, null, DateTimeOffset.UnixEpoch);

        AssertSameFiles(backedUp, await ExtractAsync(full, full));
        Assert.Equal(Directories, full.Entries.Where(e => e.Sha256 is null).Select(e => e.Path));
        Assert.All(full.Entries.Where(e => e.Sha256 is not null), e => Assert.Equal(BlockMap.IsRelationFile(e.Path), e.Blocks));
        Assert.Equal(backedUp.Values.Sum(f => (long)f.Length), full.Size);
        // Both bundles hold relation files, so each has its block map beside it.
        Assert.Equal([StoreLayout.BackupMapKey(FullId, 0), StoreLayout.BackupMapKey(FullId, 1)], full.Bundles.Select(b => b.MapKey));
        foreach (var b in full.Bundles) Assert.Contains(b.Key, _store.Keys);
        // Each map object: the 16-byte hash of every block of its bundle's relation files, in entry order; each entry's
        // MapSha256 the SHA-256 of its slice.
        foreach (var (bundle, index) in full.Bundles.Select((b, i) => (b, i)))
        {
            await using var stored = (await _store.OpenReadAsync(bundle.MapKey!, CancellationToken.None))!;
            var map = new MemoryStream();
            await stored.Content.CopyToAsync(map);
            var expected = new MemoryStream();
            foreach (var e in full.Entries.Where(e => e.Bundle == index && e.Blocks))
            {
                var content = backedUp[e.Path];
                var slice = new byte[BlockMap.BlockCount(content.Length, BlockSize) * BlockMap.HashBytes];
                for (var j = 0; j * BlockSize < content.Length; j++)
                    BlockMap.Hash(content.AsSpan(j * BlockSize, Math.Min(BlockSize, content.Length - j * BlockSize)), slice.AsSpan(j * BlockMap.HashBytes));
                Assert.Equal(BlockMap.Digest(slice), e.MapSha256);
                expected.Write(slice);
            }
            Assert.Equal(expected.ToArray(), map.ToArray());
        }
    }

    [Fact]
    public async Task AnIncrementalStoresOnlyWhatChangedAndItsChainRestoresTheNewState()
    {
        WriteCluster();
        var atFull = Current();
        var full = await BackupAsync(FullId, null, DateTimeOffset.UnixEpoch);

        // Two blocks of one relation file change, another is truncated, one is removed, one is new; pg_control changes whole.
        using (var f = new FileStream(Path.Combine(PgData, "base/1/16384"), FileMode.Open, FileAccess.Write))
            foreach (var block in new[] { 2, 7 })
            {
                f.Position = block * BlockSize;
                f.Write(RandomNumberGenerator.GetBytes(BlockSize));
            }
        using (var f = new FileStream(Path.Combine(PgData, "base/1/16385"), FileMode.Open, FileAccess.Write))
            f.SetLength(2 * BlockSize);
        File.Delete(Path.Combine(PgData, "base/1/16386"));
        Write("base/1/16387", RandomNumberGenerator.GetBytes(3 * BlockSize));
        Write("global/pg_control", RandomNumberGenerator.GetBytes(BlockSize));
        var atIncr = Current();

        var incr = await BackupAsync(IncrId, full, DateTimeOffset.UnixEpoch.AddHours(1));

        var entries = incr.Entries.ToDictionary(e => e.Path, StringComparer.Ordinal);
        Assert.Equal("2,7", entries["base/1/16384"].Stored);
        Assert.Equal("", entries["base/1/16385"].Stored);
        Assert.Equal(2 * BlockSize, entries["base/1/16385"].Size);
        Assert.False(entries.ContainsKey("base/1/16386"));
        Assert.Null(entries["base/1/16387"].Stored);
        Assert.Equal("", entries["postgresql.conf"].Stored);
        Assert.Equal("", entries["PG_VERSION"].Stored);
        Assert.Null(entries["global/pg_control"].Stored);
        // The changed blocks, the new file and pg_control: nothing else is in the incremental's bundles.
        Assert.Equal(2 * BlockSize + 3 * BlockSize + BlockSize, incr.Size);

        AssertSameFiles(atIncr, await ExtractAsync(incr, incr, full));
        // The full backup is untouched by the incremental built on it.
        AssertSameFiles(atFull, await ExtractAsync(full, incr, full));
    }

    [Fact]
    public async Task AnIncrementalByWalSummaryReadsOnlyTheBlocksTheyNameAndStoresWhatAContentComparedOneStores()
    {
        WriteCluster();
        var full = await BackupAsync(FullId, null, DateTimeOffset.UnixEpoch);
        void Overwrite(string path, params int[] blocks)
        {
            using var f = new FileStream(Path.Combine(PgData, path), FileMode.Open, FileAccess.Write);
            foreach (var block in blocks)
            {
                f.Position = block * BlockSize;
                f.Write(RandomNumberGenerator.GetBytes(BlockSize));
            }
        }
        // 16384: blocks 2 and 7 change; 16385 is truncated to 2 blocks and grows again to 4; 16387 is new.
        Overwrite("base/1/16384", 2, 7);
        using (var f = new FileStream(Path.Combine(PgData, "base/1/16385"), FileMode.Open, FileAccess.Write)) f.SetLength(2 * BlockSize);
        using (var f = new FileStream(Path.Combine(PgData, "base/1/16385"), FileMode.Append, FileAccess.Write)) f.Write(RandomNumberGenerator.GetBytes(2 * BlockSize));
        Write("base/1/16387", RandomNumberGenerator.GetBytes(3 * BlockSize));
        var atIncr = Current();
        WalSummaryPlan Summaries(params long[] blocksOf16384)
        {
            var plan = new WalSummaryPlan(BlockSize, 131072, Current().Keys);
            foreach (var b in blocksOf16384) plan.Add(new WalSummaryRow(16384, 1663, 1, 0, b, false));
            plan.Add(new WalSummaryRow(16385, 1663, 1, 0, 2, true));
            return plan.Seal();
        }

        var truthful = Summaries(2, 7);
        var incr = await BackupAsync(IncrId, full, DateTimeOffset.UnixEpoch.AddHours(1), truthful);

        var entries = incr.Entries.ToDictionary(e => e.Path, StringComparer.Ordinal);
        Assert.Equal("2,7", entries["base/1/16384"].Stored);
        Assert.Equal("2-3", entries["base/1/16385"].Stored);
        Assert.Equal("", entries["base/1/16386"].Stored);
        Assert.Null(entries["base/1/16387"].Stored);
        Assert.Equal(4, truthful.FilesBySummary); // 16384, 16385, 16386 and the empty 16388
        Assert.Equal(4, truthful.BlocksRead);
        AssertSameFiles(atIncr, await ExtractAsync(incr, incr, full));

        // Told only of block 2, it does not read block 7: the restore has the reference's block 7 (what proves it was not read).
        var partial = await BackupAsync("20261125T120000Z-cccc03", full, DateTimeOffset.UnixEpoch.AddHours(2), Summaries(2));
        Assert.Equal("2", partial.Entries.Single(e => e.Path == "base/1/16384").Stored);
        var restored = await ExtractAsync(partial, partial, full);
        var fullFile = (await ExtractAsync(full, full))["base/1/16384"];
        Assert.True(restored["base/1/16384"].AsSpan(7 * BlockSize, BlockSize).SequenceEqual(fullFile.AsSpan(7 * BlockSize, BlockSize)));
        Assert.True(restored["base/1/16384"].AsSpan(2 * BlockSize, BlockSize).SequenceEqual(atIncr["base/1/16384"].AsSpan(2 * BlockSize, BlockSize)));
    }

    /// <summary>Writes into the files created beforehand: a whole file from its start, blocks at their offsets.</summary>
    private sealed class FileSink(string root) : IBundleSink
    {
        public Stream OpenWhole(BackupEntry target) => new FileStream(Path.Combine(root, target.Path), FileMode.Open, FileAccess.Write);

        public IBlockWriter OpenBlocks(BackupEntry target) => new Blocks(File.OpenHandle(Path.Combine(root, target.Path), FileMode.Open, FileAccess.Write));

        private sealed class Blocks(Microsoft.Win32.SafeHandles.SafeFileHandle handle) : IBlockWriter
        {
            public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct) => RandomAccess.WriteAsync(handle, data, offset, ct);

            public ValueTask DisposeAsync()
            {
                handle.Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }
}
