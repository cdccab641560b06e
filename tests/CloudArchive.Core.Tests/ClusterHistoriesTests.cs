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
