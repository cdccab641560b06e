using CloudArchive.Core.Dump;
using System.Text.Json;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>expire's rules on the in-memory store: what a kept backup or a restore in progress needs stays.</summary>
public sealed class ArchiveExpirerTests : IDisposable
{
    private const long SegmentSize = 1 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("expire-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Seg(int n) => WalFileName.ForSegment(1, (ulong)n, SegmentSize).Name;

    /// <summary>Segments 1-6 archived; backup "b1" spans segment 2, "b2" segment 4.</summary>
    private async Task<InMemoryObjectStore> ArchiveAsync()
    {
        var store = await SegmentsAsync();
        foreach (var (id, seg, hour) in new[] { ("20261101T000000Z-aaaaaa", 2, 1), ("20261102T000000Z-bbbbbb", 4, 2) })
            await PlantBackupAsync(store, id, seg, seg, DateTimeOffset.UnixEpoch.AddHours(hour));
        return store;
    }

    /// <summary>A store holding segments 1 to 6 of timeline 1.</summary>
    private async Task<InMemoryObjectStore> SegmentsAsync(InMemoryObjectStore? into = null)
    {
        var store = into ?? new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);
        for (var n = 1; n <= 6; n++)
        {
            var bytes = new byte[SegmentSize];
            WalSegmentHeader.For(WalFileName.Parse(Seg(n)), 7, (uint)SegmentSize).WriteTo(bytes);
            var path = Path.Combine(_dir, Seg(n));
            await File.WriteAllBytesAsync(path, bytes);
            await wal.PushAsync(path, CancellationToken.None);
        }
        return store;
    }

    /// <summary>Backups of the chains full A &lt;- incr B &lt;- incr C and full D &lt;- diff E, hours 1 to 5, on segments 1 to 5.</summary>
    private async Task<InMemoryObjectStore> ChainsAsync(InMemoryObjectStore? into = null)
    {
        var store = await SegmentsAsync(into);
        foreach (var (id, type, reference, n) in new[]
        {
            ("20261101T000000Z-aaaaaa", "full", (string?)null, 1), ("20261102T000000Z-bbbbbb", "incr", "20261101T000000Z-aaaaaa", 2),
            ("20261103T000000Z-cccccc", "incr", "20261102T000000Z-bbbbbb", 3), ("20261104T000000Z-dddddd", "full", null, 4),
            ("20261105T000000Z-eeeeee", "diff", "20261104T000000Z-dddddd", 5),
        })
        {
            var record = new BackupRecord
            {
                Id = id, SystemIdentifier = "7", ServerVersionNum = 150000, Timeline = 1,
                StartLsn = new Lsn((ulong)(n * SegmentSize) + 40).ToString(), StopLsn = new Lsn((ulong)(n * SegmentSize) + 256).ToString(),
                StartWalFile = Seg(n), StopWalFile = Seg(n), StartTime = DateTimeOffset.UnixEpoch.AddHours(n), StopTime = DateTimeOffset.UnixEpoch.AddHours(n),
                WalSegmentSize = SegmentSize, BackupLabel = "", Compression = "zstd", Size = 0, StoredSize = 0,
                Bundles = [new BackupBundle(StoreLayout.BackupBundleKey(id, 0), 0, 0) { MapKey = StoreLayout.BackupMapKey(id, 0) }], Entries = [], Tablespaces = [],
                Type = type, Reference = reference, BlockSize = 8192,
            };
            await store.PutIfAbsentAsync(StoreLayout.BackupBundleKey(id, 0), new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None);
            await store.PutIfAbsentAsync(StoreLayout.BackupMapKey(id, 0), new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None);
            await store.PutIfAbsentAsync(StoreLayout.BackupRecordKey(id), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.BackupRecord)), new ObjectMetadata(), CancellationToken.None);
        }
        return store;
    }

    [Fact]
    public async Task RetainFullCountsFullBackupsAndKeepsWhatTheKeptOnesBuildOnOrHaveBuiltOnThem()
    {
        var store = await ChainsAsync();

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        // The newest full backup and the diff built on it; the older chain goes, its incrementals before their references.
        Assert.Equal(["20261105T000000Z-eeeeee", "20261104T000000Z-dddddd"], r.RetainedBackups);
        var removed = r.Removed.ToList();
        Assert.True(removed.IndexOf(StoreLayout.BackupRecordKey("20261103T000000Z-cccccc")) < removed.IndexOf(StoreLayout.BackupRecordKey("20261102T000000Z-bbbbbb")));
        Assert.True(removed.IndexOf(StoreLayout.BackupRecordKey("20261102T000000Z-bbbbbb")) < removed.IndexOf(StoreLayout.BackupRecordKey("20261101T000000Z-aaaaaa")));
        Assert.Contains(StoreLayout.BackupMapKey("20261101T000000Z-aaaaaa", 0), removed);
        Assert.DoesNotContain(store.Keys, k => k.Contains("aaaaaa", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AKeptIncrementalKeepsEveryBackupItBuildsOn()
    {
        var store = await ChainsAsync();
        // Only the newest incremental of the first chain is kept by a lease: its whole chain stays.
        await RestoreLease.RenewAsync(store, "20261103T000000Z-cccccc", "l1", WalFileName.Parse(Seg(3)), CancellationToken.None);

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        Assert.Equal(["20261105T000000Z-eeeeee", "20261104T000000Z-dddddd", "20261103T000000Z-cccccc", "20261102T000000Z-bbbbbb",
            "20261101T000000Z-aaaaaa"], r.RetainedBackups);
        Assert.DoesNotContain(r.Removed, k => k.StartsWith("manifest/backups/", StringComparison.Ordinal) || k.StartsWith("backups/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StreamedPiecesGoWithTheWalTheyBelongToOrOnceTheirSegmentIsWholeAndTheSegmentInProgressStays()
    {
        var store = await ArchiveAsync();
        var streamed = new StreamedWal(store);
        foreach (var n in new[] { 1, 5, 7 })
            await streamed.PutPieceAsync(WalFileName.Parse(Seg(n)), SegmentSize, 7, 0, new byte[100], CancellationToken.None);

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        // Segment 1 is older than the kept backup's WAL, segment 5 is archived whole: their pieces go. Segment 7 is in progress.
        Assert.Contains(StoreLayout.StreamedPieceKey(WalFileName.Parse(Seg(1)), 0, 100), r.Removed);
        Assert.Contains(StoreLayout.StreamedPieceKey(WalFileName.Parse(Seg(5)), 0, 100), r.Removed);
        Assert.Equal([WalFileName.Parse(Seg(7))], (await streamed.ListAsync(null, CancellationToken.None)).Select(x => x.Segment));
    }

    private static async Task PlantBackupAsync(InMemoryObjectStore store, string id, int startSeg, int stopSeg, DateTimeOffset stop)
    {
        var record = new BackupRecord
        {
            Id = id, SystemIdentifier = "7", ServerVersionNum = 150000, Timeline = 1,
            StartLsn = new Lsn((ulong)(startSeg * SegmentSize) + 40).ToString(), StopLsn = new Lsn((ulong)(stopSeg * SegmentSize) + 256).ToString(),
            StartWalFile = Seg(startSeg), StopWalFile = Seg(stopSeg), StartTime = stop.AddMinutes(-1), StopTime = stop,
            WalSegmentSize = SegmentSize, BackupLabel = "", Compression = "zstd", Size = 0, StoredSize = 0,
            Bundles = [new BackupBundle(StoreLayout.BackupBundleKey(id, 0), 0, 0)], Entries = [], Tablespaces = [],
        };
        await store.PutIfAbsentAsync(StoreLayout.BackupBundleKey(id, 0), new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None);
        await store.PutIfAbsentAsync(StoreLayout.BackupRecordKey(id), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.BackupRecord)),
            new ObjectMetadata(), CancellationToken.None);
    }

    [Theory]
    // Dated 2999, starting at the end of the archived WAL: from the future.
    [InlineData(6, 6, 2999)]
    // Dated now, starting where no WAL was ever archived: it does not restore.
    [InlineData(9, 9, 0)]
    public async Task OnePlantedFullBackupNeverMakesTheRealOnesOrTheirWalExpendable(int startSeg, int stopSeg, int year)
    {
        var store = await ArchiveAsync();
        await PlantBackupAsync(store, "29991231T000000Z-ffffff", startSeg, stopSeg, year == 0 ? DateTimeOffset.UtcNow : new DateTimeOffset(year, 12, 31, 0, 0, 0, TimeSpan.Zero));
        var before = store.Keys.ToHashSet();

        var dry = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, true), CancellationToken.None);
        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        // The real newest backup is the one kept, and the WAL from its start; the planted record is a problem line, not removed.
        Assert.Equal(["20261102T000000Z-bbbbbb"], r.RetainedBackups);
        Assert.Equal(dry.RetainedBackups, r.RetainedBackups);
        Assert.Equal(dry.Removed, r.Removed);
        Assert.Contains(r.Misfits, m => m.Contains("29991231T000000Z-ffffff", StringComparison.Ordinal));
        Assert.All(new[] { 4, 5, 6 }, n => Assert.True(HasSegment(store, n)));
        Assert.Contains(StoreLayout.BackupRecordKey("20261102T000000Z-bbbbbb"), store.Keys);
        Assert.Contains(StoreLayout.BackupRecordKey("29991231T000000Z-ffffff"), store.Keys);
        Assert.Equal(before.Where(k => !r.Removed.Contains(k)).Order(), store.Keys.Order());
    }

    [Fact]
    public async Task ADumpRecordFromTheFutureIsNeitherTheNewestNorCountedNorRemoved()
    {
        var store = new InMemoryObjectStore();
        foreach (var (id, end) in new[] { ("20261101T000000Z-d1d1d1", new DateTimeOffset(2026, 11, 1, 0, 1, 0, TimeSpan.Zero)),
                     ("20261102T000000Z-d2d2d2", new DateTimeOffset(2026, 11, 2, 0, 1, 0, TimeSpan.Zero)),
                     ("29991231T000000Z-d3d3d3", new DateTimeOffset(2999, 12, 31, 0, 1, 0, TimeSpan.Zero)) })
        {
            var record = new DumpRecord
            {
                Id = id, Kind = DumpKind.Database, Database = "shop", Format = DumpFormat.Custom, StreamFormat = "custom", Key = StoreLayout.DumpObjectKey(id),
                ServerVersion = "15.18", ServerVersionNum = 150018, PgDumpVersion = "15.18", StartTime = end.AddMinutes(-1), EndTime = end, Size = 1,
                StoredSize = 1, Sha256 = "", Compression = "zstd",
            };
            await store.PutIfAbsentAsync(StoreLayout.DumpObjectKey(id), new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None);
            await store.PutIfAbsentAsync(StoreLayout.DumpRecordKey(id), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.DumpRecord)),
                new ObjectMetadata(), CancellationToken.None);
        }

        Assert.Equal("20261102T000000Z-d2d2d2", (await new DumpCatalog(store).ResolveAsync("latest", "shop", false, CancellationToken.None)).Id);
        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(null, null, false, RetainDumps: 1), CancellationToken.None);

        Assert.Equal([StoreLayout.DumpRecordKey("20261101T000000Z-d1d1d1"), StoreLayout.DumpObjectKey("20261101T000000Z-d1d1d1")], r.Removed);
        Assert.Contains(r.Misfits, m => m.Contains("29991231T000000Z-d3d3d3", StringComparison.Ordinal));
        Assert.Contains(StoreLayout.DumpRecordKey("29991231T000000Z-d3d3d3"), store.Keys);
    }

    [Fact]
    public async Task StatusWarnsWhenTheStoreHoldsMoreThanTheRetentionPolicyKeepsUntilExpireRuns()
    {
        var store = await ArchiveAsync();
        await PlantBackupAsync(store, "20261103T000000Z-cccccc", 5, 5, DateTimeOffset.UnixEpoch.AddHours(3));
        var policy = new ExpirePolicy(1, null, false);

        var before = await new ArchiveStatus(store) { Retention = policy }.ReadAsync(CancellationToken.None);
        Assert.Contains(before.Problems, p => p.Contains("3 full backups are in the store, the policy keeps 1", StringComparison.Ordinal));
        Assert.DoesNotContain((await new ArchiveStatus(store).ReadAsync(CancellationToken.None)).Problems, p => p.StartsWith("retention", StringComparison.Ordinal));

        await new ArchiveExpirer(store).ExpireAsync(policy, CancellationToken.None);
        var after = await new ArchiveStatus(store) { Retention = policy }.ReadAsync(CancellationToken.None);
        Assert.DoesNotContain(after.Problems, p => p.StartsWith("retention", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WhenNoBackupRestoresNothingIsRemoved()
    {
        var store = await ArchiveAsync();
        foreach (var n in new[] { 2, 4 })
            await store.DeleteAsync(StoreLayout.WalRecordKey(WalFileName.Parse(Seg(n))), CancellationToken.None);
        var before = store.Keys.ToHashSet();

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None));

        Assert.Equal(ExitCode.NoRecoveryPath, e.ExitCode);
        Assert.Contains("expire removes nothing", e.Message);
        Assert.Equal(before.Order(), store.Keys.Order());
    }

    private static bool HasSegment(InMemoryObjectStore store, int n) => store.Keys.Contains(StoreLayout.WalObjectKey(WalFileName.Parse(Seg(n))));

    [Fact]
    public async Task TheKeptBackupKeepsItsWalAndTheRestGoesRecordFirst()
    {
        var store = await ArchiveAsync();

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        Assert.Equal(["20261102T000000Z-bbbbbb"], r.RetainedBackups);
        Assert.Contains(StoreLayout.BackupRecordKey("20261101T000000Z-aaaaaa"), r.Removed);
        Assert.True(r.Removed.ToList().IndexOf(StoreLayout.BackupRecordKey("20261101T000000Z-aaaaaa")) < r.Removed.ToList().IndexOf(StoreLayout.BackupBundleKey("20261101T000000Z-aaaaaa", 0)));
        Assert.False(HasSegment(store, 3));
        Assert.All(new[] { 4, 5, 6 }, n => Assert.True(HasSegment(store, n)));
    }

    [Fact]
    public async Task ALiveLeaseKeepsItsBackupAndTheWalFromItsPosition()
    {
        var store = await ArchiveAsync();
        await RestoreLease.RenewAsync(store, "20261101T000000Z-aaaaaa", "l1", WalFileName.Parse(Seg(2)), CancellationToken.None);

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        Assert.Contains("20261101T000000Z-aaaaaa", r.RetainedBackups);
        Assert.Contains(r.Leased, l => l.StartsWith("20261101T000000Z-aaaaaa (lease l1", StringComparison.Ordinal));
        Assert.All(new[] { 2, 3, 4 }, n => Assert.True(HasSegment(store, n)));
        Assert.False(HasSegment(store, 1));
    }

    [Fact]
    public async Task ALeaseThatPassedTheBackupsEndKeepsOnlyTheWalFromItsPosition()
    {
        var store = await ArchiveAsync();
        // The restore of b1 replays segment 3 already: b1 itself is no longer needed, the WAL from 3 on is.
        await RestoreLease.RenewAsync(store, "20261101T000000Z-aaaaaa", "l2", WalFileName.Parse(Seg(3)), CancellationToken.None);

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        Assert.DoesNotContain("20261101T000000Z-aaaaaa", r.RetainedBackups);
        Assert.True(HasSegment(store, 3));
        Assert.False(HasSegment(store, 2));
    }

    [Fact]
    public async Task LockedObjectsAreKeptWithTheirDateAndRemovedByALaterRunOnceTheirDateHasPassed()
    {
        var store = await ChainsAsync(new InMemoryObjectStore { Lock = new ObjectLock(1, LockMode.Governance) });
        var before = store.Keys.ToList();

        var dry = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, true), CancellationToken.None);
        var run = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        // Every record is locked: nothing is asked to go, nothing is an error, and the plan says until when. The newest backup
        // the policy drops (C) is kept locked, and with it the backups it builds on (B, A): none of them is asked to go.
        foreach (var r in new[] { dry, run })
        {
            Assert.Empty(r.Removed);
            Assert.Empty(r.Refused);
            var locked = Assert.Single(r.Locked);
            Assert.Equal(StoreLayout.BackupRecordKey("20261103T000000Z-cccccc"), locked.Key);
            Assert.True(locked.Until > DateTimeOffset.UtcNow.AddHours(23));
            Assert.StartsWith("keeps 1 objects locked until ", r.LockedSummary);
        }
        Assert.Equal(before, store.Keys);

        // A day later the locks have passed: the next run removes what the policy does not keep.
        foreach (var key in store.Keys) store.SetLockedUntil(key, DateTimeOffset.UtcNow.AddSeconds(-1));
        var later = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        Assert.Empty(later.Locked);
        Assert.Null(later.LockedSummary);
        Assert.Contains(StoreLayout.BackupRecordKey("20261101T000000Z-aaaaaa"), later.Removed);
        Assert.DoesNotContain(StoreLayout.BackupRecordKey("20261101T000000Z-aaaaaa"), store.Keys);
        Assert.Contains(StoreLayout.BackupRecordKey("20261104T000000Z-dddddd"), store.Keys);
    }

    [Fact]
    public async Task ALockedRecordKeepsItsDataAndTheWalItNeedsWhileUnlockedOnesGo()
    {
        var store = await ChainsAsync(new InMemoryObjectStore { Lock = new ObjectLock(1, LockMode.Compliance) });
        // Only the oldest backup's record is still locked.
        foreach (var key in store.Keys) store.SetLockedUntil(key, DateTimeOffset.UtcNow.AddSeconds(-1));
        var stillLocked = StoreLayout.BackupRecordKey("20261101T000000Z-aaaaaa");
        store.SetLockedUntil(stillLocked, DateTimeOffset.UtcNow.AddDays(3));

        var r = await new ArchiveExpirer(store).ExpireAsync(new ExpirePolicy(1, null, false), CancellationToken.None);

        Assert.Equal([stillLocked], r.Locked.Select(l => l.Key));
        Assert.Contains(stillLocked, store.Keys);
        Assert.Contains(StoreLayout.BackupBundleKey("20261101T000000Z-aaaaaa", 0), store.Keys);
        // The incrementals built on it are unlocked and go (newest first); its own WAL from segment 1 stays with it.
        Assert.DoesNotContain(StoreLayout.BackupRecordKey("20261103T000000Z-cccccc"), store.Keys);
        Assert.Contains(StoreLayout.WalObjectKey(WalFileName.Parse(Seg(1))), store.Keys);
    }
}
