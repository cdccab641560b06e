using System.Text;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Tests;

/// <summary>A store with a second cluster history (store-upgrade): which objects each view sees, and planted records.</summary>
public sealed class ClusterHistoriesTests
{
    private static async Task PutAsync(IObjectStore store, string key, string text) =>
        await store.PutIfAbsentAsync(key, new MemoryStream(Encoding.UTF8.GetBytes(text)), new ObjectMetadata(), CancellationToken.None);

    private static async Task<List<string>> KeysAsync(IObjectStore store, string prefix)
    {
        var keys = new List<string>();
        await foreach (var item in store.ListAsync(prefix, CancellationToken.None)) keys.Add(item.Key);
        return keys;
    }

    [Fact]
    public async Task EachClusterSeesOnlyItsOwnHistoryAndTheNewestIsTheDefault()
    {
        var memory = new InMemoryObjectStore();
        await PutAsync(memory, StoreLayout.StoreMarkerKey, "{}");
        await PutAsync(ClusterHistories.Select(memory, null), "manifest/wal/00000001/old.json", "old");
        Assert.True(await ClusterHistories.AddAsync(memory, new ClusterHistory(42, "17", DateTimeOffset.UtcNow), CancellationToken.None));
        Assert.False(await ClusterHistories.AddAsync(memory, new ClusterHistory(42, "17", DateTimeOffset.UtcNow), CancellationToken.None));

        await PutAsync(ClusterHistories.Select(memory, 42), "manifest/wal/00000001/new.json", "new");

        Assert.Contains("clusters/42/manifest/wal/00000001/new.json", memory.Keys);
        Assert.Equal(["manifest/wal/00000001/new.json"], await KeysAsync(ClusterHistories.Select(memory, null), "manifest/"));
        Assert.Equal(["manifest/wal/00000001/old.json"], await KeysAsync(ClusterHistories.First(memory), "manifest/"));
        // A cluster without a history of its own (the store's first) reads the root; so does any unknown one.
        Assert.Equal(["manifest/wal/00000001/old.json"], await KeysAsync(ClusterHistories.Select(memory, 7), "manifest/"));
        await using var marker = await ClusterHistories.Select(memory, 42).OpenReadAsync(StoreLayout.StoreMarkerKey, CancellationToken.None);
        Assert.NotNull(marker); // the marker is the store's, whatever the history
    }

    /// <summary>
    /// pg_upgrade's new cluster may start its WAL past the old one's last archived name, so nothing collides: its writes into
    /// the first history are refused all the same (exit 3, naming store-upgrade), until store-upgrade gives it its own.
    /// </summary>
    [Fact]
    public async Task AnotherClustersWritesIntoTheFirstHistoryAreRefusedWithoutACollision()
    {
        var memory = new InMemoryObjectStore();
        await PutAsync(ClusterHistories.Select(memory, 41), "wal/00000001/000000010000000000000001.zst", "old");
        Assert.Contains(StoreLayout.FirstClusterStampKey(41), memory.Keys);
        var before = memory.Keys.Count;

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() =>
            PutAsync(ClusterHistories.Select(memory, 42), "wal/00000001/000000010000000000000009.zst", "new"));
        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
        Assert.Contains("store-upgrade --pgdata", e.Message);
        Assert.Equal(before, memory.Keys.Count);
        // Reading, and the first cluster's own writes, go on; after store-upgrade the new cluster writes its own history.
        await PutAsync(ClusterHistories.Select(memory, 41), "wal/00000001/000000010000000000000002.zst", "old");
        await ClusterHistories.AddAsync(memory, new ClusterHistory(42, "17", DateTimeOffset.UtcNow), CancellationToken.None);
        await PutAsync(ClusterHistories.Select(memory, 42), "wal/00000001/000000010000000000000009.zst", "new");
        Assert.Contains("clusters/42/wal/00000001/000000010000000000000009.zst", memory.Keys);
    }

    /// <summary>
    /// A planted history record for the store's own (first) cluster would send its restore_command to an empty prefix, where
    /// every segment reads as "not archived" and recovery ends early: it is corrupt, for reads and writes alike.
    /// </summary>
    [Fact]
    public async Task AHistoryRecordForTheStoresFirstClusterIsCorruptNotAnEmptyArchive()
    {
        var memory = new InMemoryObjectStore();
        await PutAsync(ClusterHistories.Select(memory, 41), "wal/00000001/000000010000000000000001.zst", "old");
        await ClusterHistories.AddAsync(memory, new ClusterHistory(41, "15", DateTimeOffset.UtcNow), CancellationToken.None);

        var read = await Assert.ThrowsAsync<CorruptObjectException>(async () =>
            await ClusterHistories.Select(memory, 41).OpenReadAsync("wal/00000001/000000010000000000000001.zst", CancellationToken.None));
        Assert.Contains("the record was planted", read.Message);
        await Assert.ThrowsAsync<CorruptObjectException>(() => PutAsync(ClusterHistories.Select(memory, 41), "wal/00000001/000000010000000000000002.zst", "x"));
    }

    /// <summary>A store archived into before the stamp existed: its first cluster is the one its WAL records name.</summary>
    [Fact]
    public async Task AnUnstampedStoresFirstClusterIsTheOneItsRecordsName()
    {
        var memory = new InMemoryObjectStore();
        await PutAsync(memory, StoreLayout.WalRecordKey(Wal.WalFileName.Parse("000000010000000000000001")),
            "{\"name\":\"000000010000000000000001\",\"kind\":\"segment\",\"timeline\":1,\"key\":\"k\",\"systemIdentifier\":\"41\"," +
            "\"size\":1,\"storedSize\":1,\"sha256\":\"00\",\"compression\":\"zstd\",\"archivedAt\":\"2026-12-06T00:00:00Z\"}");

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() =>
            PutAsync(ClusterHistories.Select(memory, 42), "wal/00000001/000000010000000000000002.zst", "new"));
        Assert.Contains("archives database system 41", e.Message);
        Assert.Contains(StoreLayout.FirstClusterStampKey(41), memory.Keys);
    }

    /// <summary>An agent started by the upgraded cluster before store-upgrade (its pushes refused) follows the upgrade once it is run.</summary>
    [Fact]
    public async Task AViewOfAClusterWithoutAHistoryFollowsAStoreUpgradeRunMeanwhile()
    {
        var memory = new InMemoryObjectStore();
        await PutAsync(ClusterHistories.Select(memory, 41), "wal/a", "first cluster");
        var view = ClusterHistories.Select(memory, 42, recheck: TimeSpan.Zero);
        await Assert.ThrowsAsync<CloudArchiveException>(() => PutAsync(view, "wal/b", "refused before store-upgrade"));

        await ClusterHistories.AddAsync(memory, new ClusterHistory(42, "17", DateTimeOffset.UtcNow), CancellationToken.None);
        await PutAsync(view, "wal/b", "after");

        Assert.Contains("clusters/42/wal/b", memory.Keys);
        // With the default interval a view keeps its first answer for a while: one listing per request is not needed.
        var other = new InMemoryObjectStore();
        await PutAsync(ClusterHistories.Select(other, 5), "wal/a", "first cluster");
        var cached = ClusterHistories.Select(other, 7);
        await Assert.ThrowsAsync<CloudArchiveException>(() => PutAsync(cached, "wal/c", "x"));
        await ClusterHistories.AddAsync(other, new ClusterHistory(7, "17", DateTimeOffset.UtcNow), CancellationToken.None);
        await Assert.ThrowsAsync<CloudArchiveException>(() => PutAsync(cached, "wal/c", "x"));
        Assert.DoesNotContain("clusters/7/wal/c", other.Keys);
    }

    [Theory]
    [InlineData("{\"systemId\":\"43\",\"pgVersion\":\"17\",\"createdAt\":\"2026-12-06T00:00:00Z\"}")]
    [InlineData("{\"systemId\":\"42\",\"pgVersion\":\"../x\",\"createdAt\":\"2026-12-06T00:00:00Z\"}")]
    [InlineData("not json")]
    public async Task APlantedHistoryRecordIsCorruptNotAHistory(string text)
    {
        var memory = new InMemoryObjectStore();
        await PutAsync(memory, StoreLayout.ClusterRecordKey(42), text);

        await Assert.ThrowsAsync<CorruptObjectException>(() => ClusterHistories.ListAsync(memory, CancellationToken.None));
        await Assert.ThrowsAsync<CorruptObjectException>(async () => await KeysAsync(ClusterHistories.Select(memory, 42), "wal/"));
    }
}
