using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>
/// wal-receive's segment in progress on the in-memory store: stored piece by piece, never replaced, served by wal-fetch
/// as the end of the archive (the streamed bytes, then zeros), and never where a whole segment is stored or a later one follows.
/// </summary>
public sealed class StreamedWalTests : IDisposable
{
    private const ulong SystemId = 7_301_234_567_890_123_456UL;
    private const int SegmentSize = 1 << 20;
    private static readonly WalFileName Previous = WalFileName.Parse("000000010000000000000002");
    private static readonly WalFileName Current = WalFileName.Parse("000000010000000000000003");
    private readonly string _dir = Directory.CreateTempSubdirectory("streamed-wal-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A segment whose header matches its name, with WAL-like bytes in its first 64 KiB.</summary>
    private static byte[] Segment(WalFileName name, int seed)
    {
        var bytes = new byte[SegmentSize];
        new Random(seed).NextBytes(bytes.AsSpan(WalSegmentHeader.Size, 65536));
        WalSegmentHeader.For(name, SystemId, SegmentSize).WriteTo(bytes);
        return bytes;
    }

    /// <summary>A store with segment 2 archived whole, as wal-push leaves it.</summary>
    private async Task<InMemoryObjectStore> ArchiveAsync()
    {
        var store = new InMemoryObjectStore();
        var path = Path.Combine(Directory.CreateDirectory(Path.Combine(_dir, "pg_wal")).FullName, Previous.Name);
        await File.WriteAllBytesAsync(path, Segment(Previous, 2));
        await new WalArchive(store, 1).PushAsync(path, CancellationToken.None);
        return store;
    }

    private string Fetched => Path.Combine(_dir, "RECOVERYXLOG");

    /// <summary>Fetching segment 3 is "the archive has a gap" (the wait for an async push in flight cut short), nothing written.</summary>
    private async Task AssertGapAsync(InMemoryObjectStore store)
    {
        var wait = WalArchive.GapWait;
        WalArchive.GapWait = TimeSpan.FromMilliseconds(1);
        try
        {
            var e = await Assert.ThrowsAsync<CorruptObjectException>(() => new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None));
            Assert.Contains("gap", e.Message);
        }
        finally
        {
            WalArchive.GapWait = wait;
        }
    }

    [Fact]
    public async Task TheStreamedPrefixOfTheSegmentInProgressIsServedZeroPaddedAsTheEndOfTheArchive()
    {
        var store = await ArchiveAsync();
        var wal = new StreamedWal(store);
        var bytes = Segment(Current, 3);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, bytes.AsMemory(0, 10_000), CancellationToken.None);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 10_000, bytes.AsMemory(10_000, 30_000), CancellationToken.None);

        var result = await new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None);

        Assert.True(result.Found);
        Assert.Equal(40_000, result.Size);
        var served = await File.ReadAllBytesAsync(Fetched);
        Assert.Equal(SegmentSize, served.Length);
        Assert.Equal(bytes.AsSpan(0, 40_000).ToArray(), served.AsSpan(0, 40_000).ToArray());
        Assert.True(served.AsSpan(40_000).IndexOfAnyExcept((byte)0) < 0, "past the streamed bytes the segment must read as zeros");
    }

    [Fact]
    public async Task AServerWithItsOwnCopyOfTheSegmentIsNotServedTheShorterStreamedOne()
    {
        var store = await ArchiveAsync();
        await new StreamedWal(store).PutPieceAsync(Current, SegmentSize, SystemId, 0, Segment(Current, 3).AsMemory(0, 10_000), CancellationToken.None);
        var dataDir = Directory.CreateDirectory(Path.Combine(_dir, "standby")).FullName;
        Directory.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        // A standby that streamed segment 3 further than the receiver stored it: replaying a copy that ends in zeros earlier
        // would make it stop in WAL it already replayed.
        await File.WriteAllBytesAsync(Path.Combine(dataDir, "pg_wal", Current.Name), Segment(Current, 3));
        var cluster = new ControlFile(SystemId, SegmentSize) { DataDirectory = dataDir };

        var result = await new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None, cluster);

        Assert.False(result.Found);
        Assert.False(File.Exists(Fetched));
        // Without its own copy, the same server is served the streamed bytes.
        File.Delete(Path.Combine(dataDir, "pg_wal", Current.Name));
        Assert.True((await new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None, cluster)).Found);
    }

    [Fact]
    public async Task AWholeSegmentIsServedRatherThanItsStreamedPieces()
    {
        var store = await ArchiveAsync();
        var wal = new StreamedWal(store);
        // Pieces of segment 2 left behind (a receiver killed before removing them) change nothing: the whole one is served.
        await wal.PutPieceAsync(Previous, SegmentSize, SystemId, 0, Segment(Previous, 2).AsMemory(0, 5000), CancellationToken.None);

        var result = await new WalArchive(store, 1).FetchAsync(Previous.Name, Fetched, CancellationToken.None);

        Assert.Equal(SegmentSize, result.Size);
        Assert.Equal(Segment(Previous, 2), await File.ReadAllBytesAsync(Fetched));
    }

    [Fact]
    public async Task PiecesOverlappingFromARestartedReceiverChainToTheFurthestReachAndAHoleEndsTheChain()
    {
        var store = await ArchiveAsync();
        var wal = new StreamedWal(store);
        var bytes = Segment(Current, 3);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, bytes.AsMemory(0, 8192), CancellationToken.None);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, bytes.AsMemory(0, 20_000), CancellationToken.None);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 8192, bytes.AsMemory(8192, 1000), CancellationToken.None);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 20_000, bytes.AsMemory(20_000, 100), CancellationToken.None);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 30_000, bytes.AsMemory(30_000, 100), CancellationToken.None);

        var streamed = await wal.ReadAsync(Current, CancellationToken.None);

        Assert.Equal(20_100, streamed.Reach);
        Assert.Equal([0L, 20_000L], streamed.Chain.Select(p => p.Start));
        var listed = Assert.Single(await wal.ListAsync(1, CancellationToken.None));
        Assert.Equal(20_100, listed.Reach);
    }

    [Fact]
    public async Task OtherBytesForAStoredRangeAreRefusedAndTheSameBytesAreNoConflict()
    {
        var store = await ArchiveAsync();
        var wal = new StreamedWal(store);
        var bytes = Segment(Current, 3);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, bytes.AsMemory(0, 10_000), CancellationToken.None);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, bytes.AsMemory(0, 10_000), CancellationToken.None);

        var other = Segment(Current, 4);
        var e = await Assert.ThrowsAsync<CloudArchiveException>(() =>
            wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, other.AsMemory(0, 10_000), CancellationToken.None));

        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
        await new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None);
        Assert.Equal(bytes.AsSpan(0, 10_000).ToArray(), (await File.ReadAllBytesAsync(Fetched)).AsSpan(0, 10_000).ToArray());
    }

    [Fact]
    public async Task StreamedPiecesBeforeALaterWholeSegmentAreAGapNotTheEndOfTheArchive()
    {
        var store = await ArchiveAsync();
        var later = WalFileName.Parse("000000010000000000000004");
        var path = Path.Combine(_dir, "pg_wal", later.Name);
        await File.WriteAllBytesAsync(path, Segment(later, 4));
        await new WalArchive(store, 1).PushAsync(path, CancellationToken.None);
        await new StreamedWal(store).PutPieceAsync(Current, SegmentSize, SystemId, 0, Segment(Current, 3).AsMemory(0, 10_000), CancellationToken.None);
        // Served, the zeros would end recovery inside segment 3 although segment 4 is archived.
        await AssertGapAsync(store);
        Assert.False(File.Exists(Fetched));
    }

    [Fact]
    public async Task PiecesOfALaterSegmentMakeAMissingOneAGapNotTheEndOfTheArchive()
    {
        var store = await ArchiveAsync();
        var later = WalFileName.Parse("000000010000000000000004");
        await new StreamedWal(store).PutPieceAsync(later, SegmentSize, SystemId, 0, Segment(later, 4).AsMemory(0, 10_000), CancellationToken.None);
        await AssertGapAsync(store);
    }

    [Fact]
    public async Task TheEndOfEachTimelinesStreamSaysItsLsnAndWhenItWasStored()
    {
        var store = await ArchiveAsync();
        var wal = new StreamedWal(store);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, Segment(Current, 3).AsMemory(0, 4096), CancellationToken.None);
        await wal.PutPieceAsync(Previous, SegmentSize, SystemId, 0, Segment(Previous, 2).AsMemory(0, 100), CancellationToken.None);

        var end = Assert.Single(await wal.EndsAsync(1, CancellationToken.None));

        Assert.Equal(Current, end.Segment);
        Assert.Equal(new Lsn(3UL * SegmentSize + 4096), end.Reach);
        Assert.True(end.StoredAt > DateTimeOffset.UtcNow.AddMinutes(-1), $"{end.StoredAt}");
    }

    [Theory]
    [InlineData("size")]
    [InlineData("sha256")]
    [InlineData("segmentsize")]
    public async Task APieceWhoseMetadataDisagreesWithItsNameOrContentIsCorruptAndNothingIsWritten(string field)
    {
        var store = await ArchiveAsync();
        var bytes = Segment(Current, 3);
        await new StreamedWal(store).PutPieceAsync(Current, SegmentSize, SystemId, 0, bytes.AsMemory(0, 10_000), CancellationToken.None);
        var key = StoreLayout.StreamedPieceKey(Current, 0, 10_000);
        await using (var obj = await store.OpenReadAsync(key, CancellationToken.None))
        {
            var metadata = new ObjectMetadata();
            foreach (var (k, v) in obj!.Info.Metadata) metadata[k] = v;
            metadata[field] = field == "sha256" ? new string('0', 64) : "2097152";
            var content = new MemoryStream();
            await obj.Content.CopyToAsync(content);
            await store.DeleteAsync(key, CancellationToken.None);
            content.Position = 0;
            await store.PutIfAbsentAsync(key, content, metadata, CancellationToken.None);
        }

        await Assert.ThrowsAsync<CorruptObjectException>(() => new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None));

        Assert.False(File.Exists(Fetched));
    }

    [Fact]
    public async Task APieceOfAnotherSegmentPlantedUnderThisOnesNameIsRefused()
    {
        var store = await ArchiveAsync();
        var other = WalFileName.Parse("000000010000000000000007");
        await new StreamedWal(store).PutPieceAsync(other, SegmentSize, SystemId, 0, Segment(other, 7).AsMemory(0, 10_000), CancellationToken.None);
        await using (var obj = await store.OpenReadAsync(StoreLayout.StreamedPieceKey(other, 0, 10_000), CancellationToken.None))
            await store.PutIfAbsentAsync(StoreLayout.StreamedPieceKey(Current, 0, 10_000), obj!.Content, obj.Info.Metadata, CancellationToken.None);
        // Moved, not copied: pieces of a later segment would make this one a gap.
        await new StreamedWal(store).RemoveAsync(other, CancellationToken.None);

        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => new WalArchive(store, 1).FetchAsync(Current.Name, Fetched, CancellationToken.None));

        Assert.Contains("is not 000000010000000000000003", e.Message);
        Assert.False(File.Exists(Fetched));
    }

    [Fact]
    public async Task RemovingASegmentsPiecesLeavesTheOthers()
    {
        var store = await ArchiveAsync();
        var wal = new StreamedWal(store);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, Segment(Current, 3).AsMemory(0, 100), CancellationToken.None);
        await wal.PutPieceAsync(Previous, SegmentSize, SystemId, 0, Segment(Previous, 2).AsMemory(0, 100), CancellationToken.None);

        Assert.Equal(1, await wal.RemoveAsync(Previous, CancellationToken.None));

        Assert.Equal([Current], (await wal.ListAsync(null, CancellationToken.None)).Select(s => s.Segment));
    }

    [Theory]
    [InlineData("wal-stream/00000001/000000010000000000000003/00000000-00002710.zst", true)]
    [InlineData("wal-stream/00000001/000000010000000000000003/00002710-00000000.zst", false)]
    [InlineData("wal-stream/00000002/000000010000000000000003/00000000-00002710.zst", false)]
    [InlineData("wal-stream/00000001/000000010000000000000003/00000000-0000271a.zst", false)]
    [InlineData("wal-stream/00000001/00000001.history/00000000-00002710.zst", false)]
    [InlineData("wal-stream/00000001/000000010000000000000003/x/00000000-00002710.zst", false)]
    public void OnlyACanonicalPieceKeyNamesARange(string key, bool valid)
    {
        Assert.Equal(valid, StoreLayout.StreamedPieceFromKey(key) is not null);
    }

    [Fact]
    public async Task OnALockedStoreThePiecesOfAWholeSegmentStayUntilTheirDateWithoutFailingTheReceiver()
    {
        var store = new InMemoryObjectStore { Lock = new ObjectLock(1, LockMode.Governance) };
        var wal = new StreamedWal(store);
        await wal.PutPieceAsync(Current, SegmentSize, SystemId, 0, Segment(Current, 3).AsMemory(0, 100), CancellationToken.None);

        Assert.Equal(0, await wal.RemoveAsync(Current, CancellationToken.None));
        Assert.Contains(StoreLayout.StreamedPieceKey(Current, 0, 100), store.Keys);
    }
}
