using CloudArchive.Core.Crypto;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>copy's rules on the in-memory store: what is copied, in which order, and what is refused or reported.</summary>
public sealed class ArchiveCopierTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("archive-copier-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<InMemoryObjectStore> ArchiveAsync(int segments, KeyRing? keys = null)
    {
        var a = new InMemoryObjectStore { Description = "memory://a" };
        IObjectStore writer = keys is null ? a : new EncryptedObjectStore(a, keys);
        await StoreSetup.InitAsync(a, null, CancellationToken.None);
        var wal = new WalArchive(writer, 1);
        for (var i = 1; i <= segments; i++)
            await wal.PushAsync(TwoStores.Segment(_dir, $"0000000100000000000000{i:X2}", i), CancellationToken.None);
        return a;
    }

    private static Task<CopyReport> CopyAsync(IObjectStore a, IObjectStore b, KeyRing? keys = null) =>
        new ArchiveCopier(a, b, keys ?? KeyRing.None, 4).CopyAsync(CancellationToken.None);

    [Fact]
    public async Task EveryObjectIsCopiedWithItsMetadataAndASecondRunCopiesNothing()
    {
        var a = await ArchiveAsync(3);
        var b = new InMemoryObjectStore { Description = "memory://b" };

        var first = await CopyAsync(a, b);
        var second = await CopyAsync(a, b);

        Assert.Equal(6, first.Copied);
        Assert.Empty(first.Conflicts);
        Assert.Empty(first.Corrupt);
        Assert.Equal(0, second.Copied);
        Assert.Equal(6, second.Skipped);
        Assert.Equal(a.Keys, b.Keys);
        foreach (var key in a.Keys.Where(k => k != StoreLayout.StoreMarkerKey))
            Assert.Equal((await a.GetInfoAsync(key, CancellationToken.None))!.Metadata, (await b.GetInfoAsync(key, CancellationToken.None))!.Metadata);
        var restored = Path.Combine(_dir, "restored");
        Assert.True((await new WalArchive(b, 1).FetchAsync("000000010000000000000002", restored, CancellationToken.None)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(TwoStores.Segment(_dir, "000000010000000000000002", 2)), await File.ReadAllBytesAsync(restored));
    }

    [Fact]
    public async Task AnObjectPlantedInTheDestinationIsReportedAndLeftAsItIs()
    {
        var a = await ArchiveAsync(2);
        var b = new InMemoryObjectStore { Description = "memory://b" };
        var key = StoreLayout.WalObjectKey(WalFileName.Parse("000000010000000000000001"));
        await b.PutIfAbsentAsync(key, new MemoryStream("planted"u8.ToArray()), new ObjectMetadata(), CancellationToken.None);

        var r = await CopyAsync(a, b);

        var conflict = Assert.Single(r.Conflicts);
        Assert.Contains(key, conflict);
        Assert.Equal("planted"u8.ToArray(), await TwoStores.BytesAsync(b, key));
        // Its record is not copied either: B's manifest never lists what B does not hold as A does.
        Assert.Null(await b.GetInfoAsync(StoreLayout.WalRecordKey(WalFileName.Parse("000000010000000000000001")), CancellationToken.None));
        Assert.NotNull(await b.GetInfoAsync(StoreLayout.WalRecordKey(WalFileName.Parse("000000010000000000000002")), CancellationToken.None));
    }

    [Fact]
    public async Task ACorruptObjectOfTheSourceIsNeitherCopiedNorListedInTheDestination()
    {
        var a = await ArchiveAsync(2);
        var name = WalFileName.Parse("000000010000000000000002");
        var key = StoreLayout.WalObjectKey(name);
        await TwoStores.CorruptAsync(a, key);
        var b = new InMemoryObjectStore { Description = "memory://b" };

        var r = await CopyAsync(a, b);

        Assert.Contains(key, Assert.Single(r.Corrupt));
        Assert.Null(await b.GetInfoAsync(key, CancellationToken.None));
        Assert.Null(await b.GetInfoAsync(StoreLayout.WalRecordKey(name), CancellationToken.None));
        Assert.Equal(2, r.Copied);
    }

    [Fact]
    public async Task EncryptedObjectsAreCopiedAsTheyAreWithoutTheKeyAndTheDestinationTakesTheArchiveId()
    {
        var keys = new KeyRing([new EncryptionKey(Convert.FromHexString(EncryptionKey.Generate().Trim()))]);
        var a = await ArchiveAsync(2, keys);
        var b = new InMemoryObjectStore { Description = "memory://b" };

        var r = await CopyAsync(a, b);

        Assert.Equal(4, r.Copied);
        Assert.Equal(4, r.Unchecked);
        foreach (var key in a.Keys.Where(k => k != StoreLayout.StoreMarkerKey)) Assert.Equal(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
        var restored = Path.Combine(_dir, "restored");
        Assert.True((await new WalArchive(new EncryptedObjectStore(b, keys), 1).FetchAsync("000000010000000000000001", restored, CancellationToken.None)).Found);
        // With the key, the same copy checks them.
        var checkedCopy = await CopyAsync(a, new InMemoryObjectStore(), keys);
        Assert.Equal(0, checkedCopy.Unchecked);
        Assert.Equal(4, checkedCopy.Copied);
    }

    [Fact]
    public async Task ADestinationOfAnotherArchiveIsRefusedBeforeAnythingIsWritten()
    {
        var a = await ArchiveAsync(1);
        var b = new InMemoryObjectStore { Description = "memory://b" };
        await StoreSetup.InitAsync(b, null, CancellationToken.None);

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => CopyAsync(a, b));

        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
        Assert.Equal([StoreLayout.StoreMarkerKey], b.Keys);
    }

    /// <summary>After store-upgrade: the second history's objects (clusters/ID/...) are checked in their history and copied, its record last.</summary>
    [Fact]
    public async Task ASecondClusterHistoryIsCopiedAndReadsFromTheDestination()
    {
        var a = await ArchiveAsync(1);
        var history = new ClusterHistory(42, "17", DateTimeOffset.UtcNow);
        await ClusterHistories.AddAsync(a, history, CancellationToken.None);
        await new WalArchive(ClusterHistories.Of(a, history), 1).PushAsync(TwoStores.Segment(_dir, "000000010000000000000009", 9), CancellationToken.None);
        var b = new InMemoryObjectStore { Description = "memory://b" };

        var r = await CopyAsync(a, b);

        Assert.Empty(r.Corrupt);
        Assert.Equal(a.Keys, b.Keys);
        Assert.Contains(b.Keys, k => k.StartsWith("clusters/42/wal/", StringComparison.Ordinal));
        Assert.Equal(42UL, Assert.Single(await ClusterHistories.ListAsync(b, CancellationToken.None)).SystemId);
        Assert.True((await new WalArchive(ClusterHistories.Of(b, history), 1)
            .FetchAsync("000000010000000000000009", Path.Combine(_dir, "restored"), CancellationToken.None)).Found);
    }

    /// <summary>wal-receive's pieces of the segment in progress: copied (no record lists them), each checked first; a corrupt one is not.</summary>
    [Fact]
    public async Task StreamedPiecesAreCopiedEachCheckedFirst()
    {
        var a = await ArchiveAsync(1);
        var segment = WalFileName.Parse("000000010000000000000002");
        var bytes = await File.ReadAllBytesAsync(TwoStores.Segment(_dir, segment.Name, 2));
        var streamed = new StreamedWal(a);
        await streamed.PutPieceAsync(segment, 1 << 20, TwoStores.SystemId, 0, bytes.AsMemory(0, 8192), CancellationToken.None);
        await streamed.PutPieceAsync(segment, 1 << 20, TwoStores.SystemId, 8192, bytes.AsMemory(8192, 8192), CancellationToken.None);
        var corrupt = StoreLayout.StreamedPieceKey(segment, 8192, 16384);
        await TwoStores.CorruptAsync(a, corrupt);
        var b = new InMemoryObjectStore { Description = "memory://b" };

        var r = await CopyAsync(a, b);

        Assert.Contains(corrupt, Assert.Single(r.Corrupt));
        Assert.Null(await b.GetInfoAsync(corrupt, CancellationToken.None));
        var first = StoreLayout.StreamedPieceKey(segment, 0, 8192);
        Assert.Equal(await TwoStores.BytesAsync(a, first), await TwoStores.BytesAsync(b, first));
        Assert.Equal(8192, (await new StreamedWal(b).ReadAsync(segment, CancellationToken.None)).Reach);
    }

    [Fact]
    public async Task ASourceThatRefusesAccessFailsTheCopyInsteadOfLookingEmpty()
    {
        var a = await ArchiveAsync(1);
        a.RefusesAccess = true;
        var b = new InMemoryObjectStore { Description = "memory://b" };

        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => CopyAsync(a, b));

        Assert.Contains("AccessDenied", e.Message);
        Assert.Empty(b.Keys);
    }
}
