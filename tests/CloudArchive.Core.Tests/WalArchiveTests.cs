using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>The WAL service's rules on the in-memory store, with the faults real stores have, without a process or a disk store.</summary>
public sealed class WalArchiveTests : IDisposable
{
    private const ulong SystemId = 7_301_234_567_890_123_456UL;
    private readonly string _dir = Directory.CreateTempSubdirectory("wal-archive-").FullName;
    private static readonly RetryPolicy Quick = new(TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A 1 MiB segment whose header matches its name; different seeds, different content.</summary>
    private string Segment(string name, int seed, string? dir = null)
    {
        var bytes = new byte[1 << 20];
        new Random(seed).NextBytes(bytes.AsSpan(WalSegmentHeader.Size, 4096));
        WalSegmentHeader.For(WalFileName.Parse(name), SystemId, 1 << 20).WriteTo(bytes);
        var path = Path.Combine(dir ?? Directory.CreateDirectory(Path.Combine(_dir, $"src-{seed}")).FullName, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public async Task AnIdenticalRePushSucceedsAndDifferentContentIsRefused()
    {
        var store = new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);
        const string name = "000000010000000000000003";

        Assert.False((await wal.PushAsync(Segment(name, 1), CancellationToken.None)).AlreadyArchived);
        Assert.True((await wal.PushAsync(Segment(name, 1), CancellationToken.None)).AlreadyArchived);
        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => wal.PushAsync(Segment(name, 2), CancellationToken.None));

        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
        var restored = Path.Combine(_dir, "restored");
        Assert.True((await wal.FetchAsync(name, restored, CancellationToken.None)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(Segment(name, 1)), await File.ReadAllBytesAsync(restored));
    }

    [Fact]
    public async Task ASegmentWhosePagesAreOfALaterTimelineThanItsNameIsRefused()
    {
        var store = new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);
        var later = Segment("000000020000000000000003", 1);
        var renamed = Path.Combine(Path.GetDirectoryName(later)!, "000000010000000000000003");
        File.Copy(later, renamed);

        var push = await Assert.ThrowsAsync<CloudArchiveException>(() => wal.PushAsync(renamed, CancellationToken.None));
        Assert.Equal(ExitCode.InvalidInput, push.ExitCode);
        Assert.Contains("page of timeline 2", push.Message);

        // Planted in the store under the earlier timeline's name, object and metadata copied: fetched, it is refused.
        await wal.PushAsync(later, CancellationToken.None);
        await using (var obj = await store.OpenReadAsync(StoreLayout.WalObjectKey(WalFileName.Parse("000000020000000000000003")), CancellationToken.None))
            await store.PutIfAbsentAsync(StoreLayout.WalObjectKey(WalFileName.Parse("000000010000000000000003")), obj!.Content, obj.Info.Metadata,
                CancellationToken.None);
        var fetch = await Assert.ThrowsAsync<CorruptObjectException>(() => wal.FetchAsync("000000010000000000000003", Path.Combine(_dir, "RECOVERYXLOG"),
            CancellationToken.None));
        Assert.Contains("of timeline 2, after the name's 1", fetch.Message);
        Assert.False(File.Exists(Path.Combine(_dir, "RECOVERYXLOG")));
    }

    [Fact]
    public async Task ARecordOverItsSizeCapIsCorruptNotParsed()
    {
        var store = new InMemoryObjectStore();
        var name = WalFileName.Parse("000000010000000000000003");
        var huge = new byte[ManifestRecords.MaxSmallRecord + 1];
        huge.AsSpan().Fill((byte)' ');
        await store.PutIfAbsentAsync(StoreLayout.WalRecordKey(name), new MemoryStream(huge), new ObjectMetadata(), CancellationToken.None);
        await store.PutIfAbsentAsync(StoreLayout.DrillRecordKey("20261206T000000000Z-aaaaaaaa"), new MemoryStream(huge), new ObjectMetadata(),
            CancellationToken.None);

        var wal = await Assert.ThrowsAsync<CorruptObjectException>(() => new WalArchive(store, 1).ReadRecordAsync(name, CancellationToken.None));
        var drill = await Assert.ThrowsAsync<CorruptObjectException>(() =>
            new Operations.DrillCatalog(store).ReadAsync("20261206T000000000Z-aaaaaaaa", CancellationToken.None));

        Assert.Contains("corrupt or forged", wal.Message);
        Assert.Contains("more than a record may hold", drill.Message);
    }

    [Fact]
    public async Task AStoreThatKeepsFewerBytesThanItWasSentIsUnsafeAndTheSegmentNotArchived()
    {
        var store = new InMemoryObjectStore { TruncatesWrites = true };
        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => new WalArchive(store, 1).PushAsync(Segment("000000010000000000000003", 1),
            CancellationToken.None));

        Assert.Equal(ExitCode.StoreUnsafe, e.ExitCode);
        Assert.Contains("did not keep what it was sent", e.Message);
        Assert.DoesNotContain(StoreLayout.WalRecordKey(WalFileName.Parse("000000010000000000000003")), store.Keys);
    }

    [Theory]
    [InlineData("000000010000000000000005", "000000010000000000000006", "000000010000000000000004")]
    // 1 MiB segments: 4096 to a log id; the segment after the hole is in the next one.
    [InlineData("000000010000000000000FFF", "000000010000000100000000", "000000010000000000000FFE")]
    public async Task ASegmentMissingWithItsRecordBeforeLaterOnesIsAGapNotTheEnd(string missing, string later, string earlier)
    {
        WalArchive.GapWait = TimeSpan.FromMilliseconds(1);
        var store = new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);
        foreach (var (name, seed) in new[] { (earlier, 1), (missing, 2), (later, 3) })
            await wal.PushAsync(Segment(name, seed), CancellationToken.None);
        // Someone who can write to the store removes a segment and its record: nothing says it was ever there.
        await store.DeleteAsync(StoreLayout.WalObjectKey(WalFileName.Parse(missing)), CancellationToken.None);
        await store.DeleteAsync(StoreLayout.WalRecordKey(WalFileName.Parse(missing)), CancellationToken.None);
        var pgWal = Directory.CreateDirectory(Path.Combine(_dir, "pg_wal")).FullName;

        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => wal.FetchAsync(missing, Path.Combine(pgWal, "RECOVERYXLOG"), CancellationToken.None));

        Assert.Contains($"the archive has a gap: {missing}", e.Message);
        Assert.Contains(later, e.Message);
        Assert.Empty(Directory.GetFiles(pgWal));
        // After the last segment the archive really ends; another timeline's segments do not count.
        var after = WalFileName.ForSegment(1, WalFileName.Parse(later).SegmentNumber(1 << 20) + 1, 1 << 20).Name;
        Assert.False((await wal.FetchAsync(after, Path.Combine(pgWal, "RECOVERYXLOG"), CancellationToken.None)).Found);
        Assert.False((await wal.FetchAsync("00000002" + missing[8..], Path.Combine(pgWal, "RECOVERYXLOG"), CancellationToken.None)).Found);
    }

    [Fact]
    public async Task ASegmentRemovedFromTheStoreBehindItsRecordIsAFaultNotTheEndOfTheArchive()
    {
        var store = new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);
        const string name = "000000010000000000000005";
        await wal.PushAsync(Segment(name, 5), CancellationToken.None);
        await wal.PushAsync(Segment("000000010000000000000006", 6), CancellationToken.None);
        await store.DeleteAsync(StoreLayout.WalObjectKey(WalFileName.Parse(name)), CancellationToken.None);
        var pgWal = Directory.CreateDirectory(Path.Combine(_dir, "pg_wal")).FullName;

        // "Not archived" would end recovery here, before the segment after it.
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => wal.FetchAsync(name, Path.Combine(pgWal, "RECOVERYXLOG"), CancellationToken.None));
        Assert.Contains("the manifest lists it", e.Message);
        Assert.Empty(Directory.GetFiles(pgWal));
        // A file that was never archived is still simply absent.
        Assert.False((await wal.FetchAsync("000000010000000000000007", Path.Combine(pgWal, "RECOVERYXLOG"), CancellationToken.None)).Found);
    }

    [Fact]
    public async Task ALostResponseToASuccessfulWriteIsStoredNotRefused()
    {
        var memory = new InMemoryObjectStore();
        var wal = new WalArchive(new RetryingObjectStore(memory, Quick), 1);
        memory.LoseNextResponses(1);

        var pushed = await wal.PushAsync(Segment("000000010000000000000004", 4), CancellationToken.None);

        // The retry found the object its own lost write created: same checksum, so success.
        Assert.True(pushed.AlreadyArchived);
        Assert.Contains(StoreLayout.WalRecordKey(WalFileName.Parse("000000010000000000000004")), memory.Keys);
    }

    [Fact]
    public async Task TransientFaultsAreRetriedAndAStoreThatStaysDownIsAnError()
    {
        var memory = new InMemoryObjectStore();
        var wal = new WalArchive(new RetryingObjectStore(memory, Quick), 1);
        memory.FailNext(3);
        await wal.PushAsync(Segment("000000010000000000000005", 5), CancellationToken.None);

        memory.FailNext(int.MaxValue);
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => wal.FetchAsync("000000010000000000000005", Path.Combine(_dir, "x"), CancellationToken.None));
        Assert.Contains("gave up", e.Message);
        Assert.False(File.Exists(Path.Combine(_dir, "x")));
    }

    [Fact]
    public async Task NotArchivedIsSaidOnlyOfAStoreThatIsAnArchive()
    {
        var store = new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);

        // An empty bucket or prefix (the wrong one): never "not archived", which would end recovery.
        await Assert.ThrowsAsync<StoreUnavailableException>(() => wal.FetchAsync("000000010000000000000009", Path.Combine(_dir, "x"), CancellationToken.None));

        await wal.PushAsync(Segment("000000010000000000000001", 1), CancellationToken.None);
        Assert.False((await wal.FetchAsync("000000010000000000000009", Path.Combine(_dir, "x"), CancellationToken.None)).Found);
    }

    [Fact]
    public async Task StoreCheckFindsAStoreThatIgnoresTheWriteCondition()
    {
        Assert.True((await new StoreCheck(new InMemoryObjectStore()).RunAsync(CancellationToken.None)).ConditionalWriteHonoured);
        Assert.False((await new StoreCheck(new InMemoryObjectStore { IgnoresWriteCondition = true }).RunAsync(CancellationToken.None)).ConditionalWriteHonoured);
    }

    [Fact]
    public async Task OnAStoreThatKeepsVersionsASecondWriterIsAConflictAndReadsServeTheFirstVersion()
    {
        // A versioned bucket that takes a second PUT despite If-None-Match (Ceph RGW with Object Lock).
        var store = new InMemoryObjectStore { KeepsVersions = true };
        var wal = new WalArchive(store, 1);
        const string name = "000000010000000000000003";
        var first = Segment(name, 1);

        Assert.False((await wal.PushAsync(first, CancellationToken.None)).AlreadyArchived);
        Assert.True((await wal.PushAsync(Segment(name, 1), CancellationToken.None)).AlreadyArchived);
        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => wal.PushAsync(Segment(name, 2), CancellationToken.None));

        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
        Assert.Equal(3, store.VersionCount(StoreLayout.WalObjectKey(WalFileName.Parse(name))));
        var restored = Path.Combine(_dir, "restored");
        Assert.True((await wal.FetchAsync(name, restored, CancellationToken.None)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(first), await File.ReadAllBytesAsync(restored));
    }
}
