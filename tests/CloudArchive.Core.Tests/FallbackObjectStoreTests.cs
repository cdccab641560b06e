using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>Two copies of one archive read as one (--fallback-store): which store answers, and when "absent" may be said.</summary>
public sealed class FallbackObjectStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fallback-").FullName;
    private readonly StringWriter _log = new();
    private readonly TextWriter _sink = Log.Sink;

    public FallbackObjectStoreTests() => Log.Sink = _log;

    public void Dispose()
    {
        Log.Sink = _sink;
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Segments 1 to 4 archived in A and copied to B.</summary>
    private async Task<(InMemoryObjectStore A, InMemoryObjectStore B)> TwoCopiesAsync()
    {
        var a = new InMemoryObjectStore { Description = "memory://a" };
        var b = new InMemoryObjectStore { Description = "memory://b" };
        await StoreSetup.InitAsync(a, null, CancellationToken.None);
        var wal = new WalArchive(a, 1);
        for (var i = 1; i <= 4; i++) await wal.PushAsync(TwoStores.Segment(_dir, Name(i), i), CancellationToken.None);
        var copy = await new ArchiveCopier(a, b, Crypto.KeyRing.None, 2).CopyAsync(CancellationToken.None);
        Assert.Empty(copy.Corrupt);
        return (a, b);
    }

    private static string Name(int i) => $"0000000100000000000000{i:X2}";

    private async Task<FetchResult> FetchAsync(IObjectStore store, int i) =>
        await new WalArchive(store, 1).FetchAsync(Name(i), Path.Combine(_dir, "restored-" + Guid.NewGuid().ToString("N")), CancellationToken.None);

    [Fact]
    public async Task AnObjectMissingFromTheFirstStoreIsReadFromTheSecondWithAWarning()
    {
        var (a, b) = await TwoCopiesAsync();
        await a.DeleteAsync(StoreLayout.WalObjectKey(WalFileName.Parse(Name(2))), CancellationToken.None);

        var alone = await Assert.ThrowsAsync<CorruptObjectException>(() => FetchAsync(a, 2));
        var both = await FetchAsync(new FallbackObjectStore(a, b), 2);

        Assert.Contains("removed from the store", alone.Message);
        Assert.True(both.Found);
        Assert.Contains($"{StoreLayout.WalObjectKey(WalFileName.Parse(Name(2)))} is not in memory://a: read from memory://b", _log.ToString());
    }

    [Fact]
    public async Task AnObjectCorruptInTheFirstStoreIsFetchedFromTheSecondAndCheckedThere()
    {
        var (a, b) = await TwoCopiesAsync();
        var key = StoreLayout.WalObjectKey(WalFileName.Parse(Name(3)));
        await TwoStores.CorruptAsync(a, key);

        var both = await FetchAsync(new FallbackObjectStore(a, b), 3);

        Assert.True(both.Found);
        Assert.Contains($"reading {key} from memory://b", _log.ToString());
        // Corrupt in both: the second store's failure is the answer, never "absent".
        await TwoStores.CorruptAsync(b, key);
        await Assert.ThrowsAsync<CorruptObjectException>(() => FetchAsync(new FallbackObjectStore(a, b), 3));
    }

    [Fact]
    public async Task AbsentOnlyWhenBothStoresAnsweredAndAStoreThatIsDownNeverMakesASegmentAbsent()
    {
        var (a, b) = await TwoCopiesAsync();

        Assert.False((await FetchAsync(new FallbackObjectStore(a, b), 5)).Found);
        b.RefusesAccess = true;
        await Assert.ThrowsAsync<StoreUnavailableException>(() => FetchAsync(new FallbackObjectStore(a, b), 5));
        b.RefusesAccess = false;
        a.RefusesAccess = true;
        await Assert.ThrowsAsync<StoreUnavailableException>(() => FetchAsync(new FallbackObjectStore(a, b), 5));
        // The first store down, the second has the segment: served from it.
        Assert.True((await FetchAsync(new FallbackObjectStore(a, b), 1)).Found);
        Assert.Contains("memory://a cannot be read", _log.ToString());
    }

    [Fact]
    public async Task ARecordThatDoesNotReadInTheFirstStoreIsReadFromTheSecond()
    {
        var (a, b) = await TwoCopiesAsync();
        var key = StoreLayout.WalRecordKey(WalFileName.Parse(Name(2)));
        await a.DeleteAsync(key, CancellationToken.None);
        await a.PutIfAbsentAsync(key, new MemoryStream("{not json"u8.ToArray()), new ObjectMetadata(), CancellationToken.None);

        await Assert.ThrowsAsync<CorruptObjectException>(() => new WalArchive(a, 1).ReadRecordAsync(WalFileName.Parse(Name(2)), CancellationToken.None));
        var record = await new WalArchive(new FallbackObjectStore(a, b), 1).ReadRecordAsync(WalFileName.Parse(Name(2)), CancellationToken.None);

        Assert.Equal(Name(2), record.Name);
        Assert.Contains($"reading {key} from memory://b", _log.ToString());
    }

    [Fact]
    public async Task AListingIsTheUnionOfBothStoresEachKeyOnce()
    {
        var (a, b) = await TwoCopiesAsync();
        await a.DeleteAsync(StoreLayout.WalRecordKey(WalFileName.Parse(Name(1))), CancellationToken.None);
        await b.DeleteAsync(StoreLayout.WalRecordKey(WalFileName.Parse(Name(4))), CancellationToken.None);

        var keys = new List<string>();
        await foreach (var item in new FallbackObjectStore(a, b).ListAsync(StoreLayout.ManifestWalPrefix, CancellationToken.None)) keys.Add(item.Key);

        Assert.Equal(Enumerable.Range(1, 4).Select(i => StoreLayout.WalRecordKey(WalFileName.Parse(Name(i)))), keys);
    }
}
