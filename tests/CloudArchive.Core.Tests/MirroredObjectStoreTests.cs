using CloudArchive.Core.Crypto;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>Archiving to two stores (--store-2) on the in-memory store: both written, what a missed write does in each mode, the backlog and its catch-up.</summary>
public sealed class MirroredObjectStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mirrored-store-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(InMemoryObjectStore A, InMemoryObjectStore B)> StoresAsync()
    {
        var a = new InMemoryObjectStore { Description = "memory://a" };
        var b = new InMemoryObjectStore { Description = "memory://b" };
        await StoreSetup.InitAsync(a, null, CancellationToken.None);
        return (a, b);
    }

    private (MirroredObjectStore Mirror, IObjectStore Writer) Pair(IObjectStore a, IObjectStore b, SecondStoreMode mode, KeyRing? keys = null)
    {
        var mirror = new MirroredObjectStore(a, b, mode, keys ?? KeyRing.None) { Backlog = StoreBacklog.In(_dir) };
        return (mirror, new EncryptedObjectStore(mirror, keys ?? KeyRing.None));
    }

    private Task<PushResult> PushAsync(IObjectStore writer, int segment) =>
        new WalArchive(writer, 1).PushAsync(TwoStores.Segment(_dir, $"0000000100000000000000{segment:X2}", segment), CancellationToken.None);

    private static IEnumerable<string> ArchiveKeys(InMemoryObjectStore store) => store.Keys.Where(k => k != StoreLayout.StoreMarkerKey);

    [Fact]
    public async Task EveryWriteReachesBothStoresAsTheSameCiphertextAndTheSecondTakesTheArchiveId()
    {
        var (a, b) = await StoresAsync();
        var keys = new KeyRing([new EncryptionKey(Convert.FromHexString(EncryptionKey.Generate().Trim()))]);
        var (_, writer) = Pair(a, b, SecondStoreMode.Required, keys);

        await PushAsync(writer, 1);
        await PushAsync(writer, 2);
        await PushAsync(writer, 2); // PostgreSQL retrying a push that succeeded: no conflict in either store

        Assert.Equal(ArchiveKeys(a), ArchiveKeys(b));
        Assert.Equal(4, ArchiveKeys(b).Count());
        foreach (var key in ArchiveKeys(a)) Assert.Equal(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
        var restored = Path.Combine(_dir, "restored");
        Assert.True((await new WalArchive(new EncryptedObjectStore(b, keys), 1).FetchAsync("000000010000000000000002", restored, CancellationToken.None)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(TwoStores.Segment(_dir, "000000010000000000000002", 2)), await File.ReadAllBytesAsync(restored));
    }

    [Fact]
    public async Task ARequiredSecondStoreThatIsDownFailsThePushAndTheRetryFindsBothStoresHoldingTheSameBytes()
    {
        var (a, b) = await StoresAsync();
        var (mirror, writer) = Pair(a, b, SecondStoreMode.Required);
        await PushAsync(writer, 1);
        b.FailNext(int.MaxValue);

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => PushAsync(writer, 2));

        Assert.Equal(ExitCode.StoreUnavailable, e.ExitCode);
        Assert.Contains("required", e.Message);
        var key = StoreLayout.WalObjectKey(WalFileName.Parse("000000010000000000000002"));
        Assert.Equal(key, Assert.Single(mirror.Backlog!.Read()).Key);
        // The store is back; PostgreSQL retries: the catch-up first copies what the first store holds, then the push finds it in both.
        b.FailNext(0);
        Assert.NotNull(await SecondStoreCatchUp.RunAsync(mirror, 64, CancellationToken.None));
        await PushAsync(writer, 2);
        Assert.Empty(mirror.Backlog.Read());
        Assert.Equal(ArchiveKeys(a), ArchiveKeys(b));
        Assert.Equal(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
    }

    [Fact]
    public async Task ABestEffortSecondStoreThatIsDownDoesNotStopArchivingAndItsBacklogIsCaughtUpWhenItReturns()
    {
        var (a, b) = await StoresAsync();
        var (mirror, writer) = Pair(a, b, SecondStoreMode.BestEffort);
        await PushAsync(writer, 1);
        b.FailNext(int.MaxValue);

        for (var i = 2; i <= 5; i++) await PushAsync(writer, i);

        Assert.Equal(10, ArchiveKeys(a).Count());
        Assert.Equal(2, ArchiveKeys(b).Count());
        Assert.Equal(8, mirror.Backlog!.Read().Count);
        Assert.True(mirror.RecentlyDown);
        // Still down: the catch-up says so and keeps everything.
        Assert.True((await SecondStoreCatchUp.RunAsync(mirror, 64, CancellationToken.None))!.Down);
        Assert.Equal(8, mirror.Backlog.Read().Count);

        b.FailNext(0);
        var r = await SecondStoreCatchUp.RunAsync(mirror, 64, CancellationToken.None);

        Assert.Equal(new CatchUpResult(8, 0, false), r);
        Assert.Empty(mirror.Backlog.Read());
        Assert.False(mirror.Backlog.RecentlyDown(TimeSpan.FromMinutes(1)));
        Assert.Equal(ArchiveKeys(a), ArchiveKeys(b));
        foreach (var key in ArchiveKeys(a)) Assert.Equal(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
    }

    [Fact]
    public async Task OtherContentInTheSecondStoreIsAConflictNeverReplaced()
    {
        var (a, b) = await StoresAsync();
        var key = StoreLayout.WalObjectKey(WalFileName.Parse("000000010000000000000001"));
        await StoreSetup.MarkAsCopyOfAsync(a, b, CancellationToken.None);
        await b.PutIfAbsentAsync(key, new MemoryStream("planted"u8.ToArray()), new ObjectMetadata(), CancellationToken.None);

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => PushAsync(Pair(a, b, SecondStoreMode.Required).Writer, 1));
        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);

        // Best-effort: archiving goes on, the key stays in the backlog (a catch-up reports it again and keeps it).
        var (mirror, writer) = Pair(a, b, SecondStoreMode.BestEffort);
        await PushAsync(writer, 1);
        var r = await SecondStoreCatchUp.RunAsync(mirror, 64, CancellationToken.None);
        Assert.Contains(key, mirror.Backlog!.Read().Select(x => x.Key));
        Assert.True(r!.Left > 0);
        Assert.Equal("planted"u8.ToArray(), await TwoStores.BytesAsync(b, key));
    }

    [Fact]
    public async Task APushKilledBetweenTheTwoPutsIsCompletedByTheRetry()
    {
        var (a, b) = await StoresAsync();
        // The first store's put happened, the process died before the second's: the first store alone holds the segment.
        await PushAsync(a, 1);
        Assert.Empty(ArchiveKeys(b));

        await PushAsync(Pair(a, b, SecondStoreMode.Required).Writer, 1);

        Assert.Equal(ArchiveKeys(a), ArchiveKeys(b));
        var key = StoreLayout.WalObjectKey(WalFileName.Parse("000000010000000000000001"));
        Assert.Equal(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
    }

    [Fact]
    public async Task TwoWritersOfOneSegmentThatWinDifferentStoresLeaveBothStoresHoldingTheSameBytes()
    {
        var (a, b) = await StoresAsync();
        var keys = new KeyRing([new EncryptionKey(Convert.FromHexString(EncryptionKey.Generate().Trim()))]);
        // Two processes pushing the same segment (the async worker and the agent; a standby's archive_command and the
        // primary's), each with its own pair of stores: the first wins the first store, then stalls on its way to the second
        // while the other pushes the segment through, start to end. The two encrypt with their own nonces and time-stamp their
        // own records, so their bytes differ.
        var stalled = new GatedStore(b);
        var (mirror1, writer1) = Pair(a, stalled, SecondStoreMode.Required, keys);
        var (mirror2, writer2) = Pair(a, b, SecondStoreMode.Required, keys);
        var segment = TwoStores.Segment(_dir, "000000010000000000000001", 1);

        var push1 = new WalArchive(writer1, 1).PushAsync(segment, CancellationToken.None);
        await stalled.Arrived;
        var second = await new WalArchive(writer2, 1).PushAsync(segment, CancellationToken.None);
        stalled.Release();
        var first = await push1;

        Assert.False(first.AlreadyArchived);
        Assert.True(second.AlreadyArchived);
        Assert.Equal(ArchiveKeys(a), ArchiveKeys(b));
        foreach (var key in ArchiveKeys(a)) Assert.Equal(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
        Assert.Empty(mirror1.Backlog!.Read());
        var report = await new ArchiveCopier(a, b, keys, jobs: 2).CopyAsync(CancellationToken.None);
        Assert.Empty(report.Conflicts);
        Assert.Empty(report.Corrupt);
        Assert.Equal(0, report.Copied);
    }

    [Fact]
    public async Task AWriterThatFindsADamagedCopyInTheFirstStoreGivesTheSecondItsOwnNeverTheDamagedOne()
    {
        var (a, b) = await StoresAsync();
        await PushAsync(a, 1); // the first store alone: a push killed before the second store's put
        var key = StoreLayout.WalObjectKey(WalFileName.Parse("000000010000000000000001"));
        await TwoStores.CorruptAsync(a, key);

        await PushAsync(Pair(a, b, SecondStoreMode.Required).Writer, 1);

        var restored = Path.Combine(_dir, "restored");
        Assert.True((await new WalArchive(b, 1).FetchAsync("000000010000000000000001", restored, CancellationToken.None)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(TwoStores.Segment(_dir, "000000010000000000000001", 1)), await File.ReadAllBytesAsync(restored));
        Assert.NotEqual(await TwoStores.BytesAsync(a, key), await TwoStores.BytesAsync(b, key));
    }

    [Fact]
    public async Task ASecondStoreOfAnotherArchiveIsRefused()
    {
        var (a, b) = await StoresAsync();
        await StoreSetup.InitAsync(b, null, CancellationToken.None);

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => PushAsync(Pair(a, b, SecondStoreMode.Required).Writer, 1));

        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
        Assert.Contains("another archive", e.Message);
        Assert.Empty(ArchiveKeys(b));
    }

    [Fact]
    public async Task AnObjectLargerThanTheMemoryBufferReachesBothStores()
    {
        var (a, b) = await StoresAsync();
        var (_, writer) = Pair(a, b, SecondStoreMode.Required);
        var bytes = new byte[(64 << 20) + 12345];
        new Random(7).NextBytes(bytes.AsSpan(0, 1 << 20));

        await writer.PutIfAbsentAsync("backups/x/data/00000.tar.zst", new MemoryStream(bytes), new ObjectMetadata(), CancellationToken.None);

        Assert.Equal(bytes, await TwoStores.BytesAsync(b, "backups/x/data/00000.tar.zst"));
        Assert.Equal(bytes, await TwoStores.BytesAsync(a, "backups/x/data/00000.tar.zst"));
    }

    [Fact]
    public async Task StatusCountsWhatTheSecondStoreLacksButNotWhatItsOwnRetentionRemoved()
    {
        var (a, b) = await StoresAsync();
        var (mirror, writer) = Pair(a, b, SecondStoreMode.BestEffort);
        for (var i = 1; i <= 2; i++) await PushAsync(writer, i);
        b.FailNext(int.MaxValue);
        for (var i = 3; i <= 4; i++) await PushAsync(writer, i);
        b.FailNext(0);
        // The second store's own retention removed segment 1: older than anything it keeps, so not lacking.
        var first = WalFileName.Parse("000000010000000000000001");
        await b.DeleteAsync(StoreLayout.WalRecordKey(first), CancellationToken.None);
        await b.DeleteAsync(StoreLayout.WalObjectKey(first), CancellationToken.None);

        var r = await SecondStoreReport.ReadAsync(new SecondStoreProbe(a, b, SecondStoreMode.BestEffort, mirror.Backlog), CancellationToken.None);

        Assert.Equal(4, r.LackingObjects);
        Assert.Equal(2, r.LackingSegments);
        Assert.Equal(4, r.BacklogObjects);
        Assert.Contains("lacks 4 objects", r.Problem);
        await SecondStoreCatchUp.RunAsync(mirror, 64, CancellationToken.None);
        var after = await SecondStoreReport.ReadAsync(new SecondStoreProbe(a, b, SecondStoreMode.BestEffort, mirror.Backlog), CancellationToken.None);
        Assert.True(after.Complete);
        Assert.Null(after.Problem);
        Assert.Equal(0, after.BacklogObjects);
    }

    [Fact]
    public void TheBacklogKeepsEachKeyOnceOldestFirstAndSurvivesATornLine()
    {
        var backlog = StoreBacklog.In(_dir);
        backlog.Add("wal/00000001/x.zst");
        backlog.Add("manifest/wal/x.json");
        backlog.Add("wal/00000001/x.zst");
        File.AppendAllText(Path.Combine(backlog.Directory, "backlog"), "17000"); // a write cut short by a crash

        Assert.Equal(["wal/00000001/x.zst", "manifest/wal/x.json"], StoreBacklog.Find(_dir)!.Read().Select(e => e.Key));
        backlog.Remove(["wal/00000001/x.zst"]);
        Assert.Equal(["manifest/wal/x.json"], backlog.Read().Select(e => e.Key));
        Assert.True(backlog.HasEntries);
    }

    /// <summary>A store whose first put stalls until <see cref="Release"/>: one writer held between the first store and the second.</summary>
    private sealed class GatedStore(IObjectStore inner) : IObjectStore
    {
        private readonly TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _puts;

        public Task Arrived => _arrived.Task;

        public void Release() => _released.TrySetResult();

        public string Description => inner.Description;

        public ILargeWriteConditionProbe? LargeWriteProbe => inner.LargeWriteProbe;

        public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
        {
            if (key != StoreLayout.StoreMarkerKey && Interlocked.Increment(ref _puts) == 1)
            {
                _arrived.TrySetResult();
                await _released.Task.WaitAsync(ct);
            }
            return await inner.PutIfAbsentAsync(key, content, metadata, ct);
        }

        public Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct) => inner.OpenReadAsync(key, ct);

        public Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) => inner.GetInfoAsync(key, ct);

        public IAsyncEnumerable<ListedObject> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);

        public Task<bool> DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);

        public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
            inner.RemoveAbandonedWritesAsync(before, dryRun, ct);
    }
}
