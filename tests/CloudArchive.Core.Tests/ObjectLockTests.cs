using CloudArchive.Core.Configuration;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Tests;

/// <summary>The lock settings, the oldest-version rule of versioned stores, and store-check on such a store.</summary>
public sealed class ObjectLockTests
{
    private static Func<Setting, string?> Settings(string? days, string? mode) =>
        s => s == SettingsTable.LockDays ? days : s == SettingsTable.LockMode ? mode : null;

    [Fact]
    public void LockSettingsAreReadOrRefusedInOneLine()
    {
        Assert.Null(ObjectLock.From(Settings(null, null)));
        Assert.Null(ObjectLock.From(Settings("0", "compliance")));
        Assert.Equal(new ObjectLock(30, LockMode.Governance), ObjectLock.From(Settings("30", null)));
        Assert.Equal(new ObjectLock(7, LockMode.Compliance), ObjectLock.From(Settings("7", "COMPLIANCE")));
        foreach (var (days, mode) in new[] { ("-1", (string?)null), ("ten", null), ("1.5", null), ("36501", null), ("1", "legal-hold") })
        {
            var e = Assert.Throws<CloudArchiveException>(() => ObjectLock.From(Settings(days, mode)));
            Assert.Equal(ExitCode.Usage, e.ExitCode);
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    [Fact]
    public void TheOldestVersionIsTheObjectAndOnlyItsWriterWon()
    {
        // Newest first, as S3 lists them; a delete marker (a plain DELETE) is no content.
        ObjectVersion[] versions = [new("marker", DeleteMarker: true), new("third"), new("second"), new("first")];

        Assert.Equal("first", ObjectVersions.Oldest(versions)!.Id);
        Assert.True(ObjectVersions.Won(versions, "first"));
        Assert.False(ObjectVersions.Won(versions, "second"));
        Assert.False(ObjectVersions.Won(versions, "marker"));
        Assert.Null(ObjectVersions.Oldest([new ObjectVersion("m", DeleteMarker: true)]));
    }

    [Fact]
    public async Task ConcurrentWritersOfOneKeyOnAVersionedStoreHaveExactlyOneWinner()
    {
        var store = new InMemoryObjectStore { KeepsVersions = true };
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() =>
            store.PutIfAbsentAsync("k", new MemoryStream([(byte)i]), new ObjectMetadata(), CancellationToken.None))));

        Assert.Single(outcomes, o => o is PutOutcome.Created);
        Assert.Equal(16, store.VersionCount("k"));
    }

    [Fact]
    public async Task StoreCheckOnAVersionedLockedStoreProvesTheOldestVersionRuleAndKeepsItsLockedProbes()
    {
        var report = await new StoreCheck(new InMemoryObjectStore { KeepsVersions = true, Lock = new ObjectLock(1, LockMode.Governance) })
            .RunAsync(CancellationToken.None);

        Assert.True(report.ConditionalWriteHonoured);
        Assert.True(report.Retention!.Versioned);
        Assert.Equal(new ObjectLock(1, LockMode.Governance), report.Retention.InForce);
        Assert.Equal(2, report.LockedProbes.Count);
        Assert.True(report.DeleteAllowed);
    }

    [Fact]
    public async Task TheLockHorizonIsTheEarliestAndLatestDateOfWhatWasRead()
    {
        var store = new InMemoryObjectStore { Lock = new ObjectLock(1, LockMode.Governance) };
        foreach (var k in new[] { "a", "b", "c" })
            await store.PutIfAbsentAsync(k, new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None);
        var early = DateTimeOffset.UtcNow.AddHours(2);
        var late = DateTimeOffset.UtcNow.AddDays(9);
        store.SetLockedUntil("a", early);
        store.SetLockedUntil("c", late);
        var watched = new LockWatchingStore(store, new LockHorizon());

        Assert.Equal("no locks", watched.Horizon.ToString());
        foreach (var k in new[] { "a", "b", "c" }) await (await watched.OpenReadAsync(k, CancellationToken.None))!.DisposeAsync();

        Assert.Equal(3, watched.Horizon.Locked);
        Assert.Equal(early, watched.Horizon.Earliest);
        Assert.Equal(late, watched.Horizon.Latest);
    }
}
