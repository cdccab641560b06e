using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage.Tests;

/// <summary>
/// ONE contract, every backend: objects are immutable, the conditional put is the only write, a missing
/// key is "absent" and an unreachable store is never mistaken for one.
/// </summary>
public sealed class ObjectStoreContractTests
{
    private static readonly CancellationToken Ct = CancellationToken.None;

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task PutOfNewKeyCreatesAndReadsBackWithMetadata(string backend)
    {
        var store = Backends.Open(backend);
        var outcome = await store.PutIfAbsentAsync("a/b/one", Bytes("hello, archive"), Meta("sha256", "abc", "size", "14"), Ct);
        Assert.IsType<PutOutcome.Created>(outcome);

        await using var obj = await store.OpenReadAsync("a/b/one", Ct);
        Assert.NotNull(obj);
        Assert.Equal("hello, archive", await new StreamReader(obj.Content).ReadToEndAsync(Ct));
        Assert.Equal("abc", obj.Info.Metadata.Get("sha256"));
        Assert.Equal("14", obj.Info.Metadata.Get("size"));
        var info = await store.GetInfoAsync("a/b/one", Ct);
        Assert.Equal(14, info!.Size);
        Assert.Equal("abc", info.Metadata.Get("sha256"));
    }

    /// <summary>S3 reads with a range from byte 0 (no SDK MD5 pass); an empty object has no byte 0 and must still read as empty.</summary>
    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task AnEmptyObjectAndALargerOneReadBackWhole(string backend)
    {
        var store = Backends.Open(backend);
        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("empty", new MemoryStream(), Meta("sha256", "e"), Ct));
        var large = RandomNumberGenerator.GetBytes(3 << 20);
        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("large", new MemoryStream(large), Meta("sha256", "l"), Ct));

        await using (var empty = await store.OpenReadAsync("empty", Ct))
        {
            Assert.NotNull(empty);
            Assert.Equal(0, empty.Info.Size);
            Assert.Equal("e", empty.Info.Metadata.Get("sha256"));
            Assert.Equal(-1, empty.Content.ReadByte());
        }
        await using var whole = await store.OpenReadAsync("large", Ct);
        using var copy = new MemoryStream();
        await whole!.Content.CopyToAsync(copy, Ct);
        Assert.Equal(large.Length, whole.Info.Size);
        Assert.Equal(large, copy.ToArray());
        Assert.Equal("l", whole.Info.Metadata.Get("sha256"));
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task PutOfExistingKeyReportsTheStoredObjectAndNeverOverwrites(string backend)
    {
        var store = Backends.Open(backend);
        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("k", Bytes("first"), Meta("sha256", "first"), Ct));

        var second = await store.PutIfAbsentAsync("k", Bytes("second, longer"), Meta("sha256", "second"), Ct);

        var exists = Assert.IsType<PutOutcome.AlreadyExists>(second);
        Assert.Equal("first", exists.Existing.Metadata.Get("sha256"));
        Assert.Equal("first", await ReadAllTextAsync(store, "k"));
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task SixteenRacingPutsOfOneKeyHaveExactlyOneWinner(string backend)
    {
        var store = Backends.Open(backend);
        using var start = new ManualResetEventSlim();
        var racers = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
        {
            start.Wait();
            return (i, await store.PutIfAbsentAsync("race", Bytes($"content of racer {i}"), Meta("sha256", $"racer{i}"), Ct));
        })).ToList();
        start.Set();
        var results = await Task.WhenAll(racers);

        var winners = results.Where(r => r.Item2 is PutOutcome.Created).ToList();
        Assert.Single(winners);
        Assert.All(results.Where(r => r.Item2 is PutOutcome.AlreadyExists),
            r => Assert.Equal($"racer{winners[0].i}", ((PutOutcome.AlreadyExists)r.Item2).Existing.Metadata.Get("sha256")));
        Assert.Equal($"content of racer {winners[0].i}", await ReadAllTextAsync(store, "race"));
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task ObjectAboveTheSingleRequestLimitObeysTheSameRule(string backend)
    {
        var store = Backends.Open(backend);
        const long size = 40L * 1024 * 1024; // above S3's first part (8 MiB) and Azure's single-upload limit (32 MiB)
        var (created, firstHash) = await PutGeneratedAsync(store, "large", size, seed: 1);
        Assert.IsType<PutOutcome.Created>(created);

        var (again, _) = await PutGeneratedAsync(store, "large", size, seed: 2);

        Assert.IsType<PutOutcome.AlreadyExists>(again);
        Assert.Equal(firstHash, await HashOfObjectAsync(store, "large"));
    }

    /// <summary>
    /// A WAL segment that does not compress (20 MiB of zstd output for a 16 MiB segment, or a 64 MiB segment) is
    /// content of known length: it must go in one conditional request, because some S3 servers (Ceph RGW) ignore
    /// the condition on a multipart completion and racing writers would each "create" it.
    /// </summary>
    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task RacingPutsOfALargeObjectOfKnownLengthHaveExactlyOneWinner(string backend)
    {
        var store = Backends.Open(backend);
        var contents = Enumerable.Range(0, 4).Select(i =>
        {
            var bytes = new byte[20 << 20];
            new Random(i).NextBytes(bytes);
            return bytes;
        }).ToList();

        var results = await Task.WhenAll(contents.Select((c, i) =>
            store.PutIfAbsentAsync("incompressible", new MemoryStream(c, writable: false), Meta("sha256", $"racer{i}"), Ct)));

        var winners = results.Select((r, i) => (r, i)).Where(x => x.r is PutOutcome.Created).ToList();
        Assert.Single(winners);
        await using var obj = await store.OpenReadAsync("incompressible", Ct);
        using var read = new MemoryStream();
        await obj!.Content.CopyToAsync(read, Ct);
        Assert.True(read.ToArray().AsSpan().SequenceEqual(contents[winners[0].i]), "the stored object is not the winner's");
    }

    [Fact]
    public async Task AnUnfinishedMultipartUploadOfAKilledWriterIsAbortedByTheCleanup()
    {
        var prefix = Guid.NewGuid().ToString("N") + "/";
        var store = Backends.OpenS3At(prefix);
        var (client, bucket) = Backends.RawS3();
        var upload = await client.InitiateMultipartUploadAsync(new Amazon.S3.Model.InitiateMultipartUploadRequest { BucketName = bucket, Key = prefix + "backups/x/data/00000.tar.zst" }, Ct);

        // Not yet abandoned: a write that may still be running is left alone.
        Assert.Empty(await store.RemoveAbandonedWritesAsync(DateTimeOffset.UtcNow.AddHours(-1), dryRun: false, Ct));
        var dry = await store.RemoveAbandonedWritesAsync(DateTimeOffset.UtcNow.AddMinutes(1), dryRun: true, Ct);
        Assert.Contains(upload.UploadId, Assert.Single(dry));
        Assert.Single(await store.RemoveAbandonedWritesAsync(DateTimeOffset.UtcNow.AddMinutes(1), dryRun: false, Ct));

        Assert.Empty(await store.RemoveAbandonedWritesAsync(DateTimeOffset.UtcNow.AddMinutes(1), dryRun: false, Ct));
        var left = await client.ListMultipartUploadsAsync(new Amazon.S3.Model.ListMultipartUploadsRequest { BucketName = bucket, Prefix = prefix }, Ct);
        Assert.Empty(left.MultipartUploads ?? []);
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task ListingByPrefixReturnsEveryKeyInOrderAcrossPages(string backend)
    {
        var store = Backends.Open(backend, listPageSize: 50);
        var keys = Enumerable.Range(0, 130).Select(i => $"list/{i:D4}").ToList();
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 8 },
            async (k, ct) => await store.PutIfAbsentAsync(k, Bytes(k), new ObjectMetadata(), ct));
        await store.PutIfAbsentAsync("listing-is-not-this", Bytes("x"), new ObjectMetadata(), Ct);
        await store.PutIfAbsentAsync("other/0001", Bytes("x"), new ObjectMetadata(), Ct);

        var listed = new List<ListedObject>();
        await foreach (var o in store.ListAsync("list/", Ct)) listed.Add(o);

        Assert.Equal(keys, listed.Select(o => o.Key).ToList());
        Assert.All(listed, o => Assert.True(o.Size >= 9, $"{o.Key} listed with size {o.Size}"));
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task MissingKeyIsAbsentNotAnError(string backend)
    {
        var store = Backends.Open(backend);
        await store.PutIfAbsentAsync("present", Bytes("x"), new ObjectMetadata(), Ct);

        Assert.Null(await store.OpenReadAsync("absent/key", Ct));
        Assert.Null(await store.GetInfoAsync("absent/key", Ct));
        Assert.False(await store.DeleteAsync("absent/key", Ct));
        var none = new List<ListedObject>();
        await foreach (var o in store.ListAsync("absent/", Ct)) none.Add(o);
        Assert.Empty(none);
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task DeleteRemovesAnObjectForRetention(string backend)
    {
        var store = Backends.Open(backend);
        await store.PutIfAbsentAsync("old", Bytes("x"), new ObjectMetadata(), Ct);

        Assert.True(await store.DeleteAsync("old", Ct));

        Assert.Null(await store.GetInfoAsync("old", Ct));
        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("old", Bytes("y"), new ObjectMetadata(), Ct));
    }

    [Theory, MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public async Task UnreachableStoreIsAnErrorNeverAbsent(string backend)
    {
        var store = new RetryingObjectStore(Backends.OpenUnreachable(backend),
            new RetryPolicy(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(200)));

        var read = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.OpenReadAsync("wal/x", Ct));
        // A cloud store is retried until the budget runs out; a local directory that is not there (not mounted)
        // will not appear within seconds: it fails at once.
        Assert.Contains(backend == "local" ? "does not exist (not mounted?)" : "gave up", read.Message);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetInfoAsync("wal/x", Ct));
        await Assert.ThrowsAsync<StoreUnavailableException>(async () =>
        {
            await foreach (var _ in store.ListAsync("wal/", Ct)) { }
        });
    }

    [Theory, MemberData(nameof(Backends.Persistent), MemberType = typeof(Backends))]
    public async Task OneGibibyteStreamsThroughWithoutBeingHeldInMemory(string backend)
    {
        var store = Backends.Open(backend);
        const long size = 1L << 30;
        // What other tests left on the heap is not this stream's.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(false));
                try { await Task.Delay(20, sampling.Token); } catch (OperationCanceledException) { }
            }
        });

        var (outcome, written) = await PutGeneratedAsync(store, "huge", size, seed: 7);
        var read = await HashOfObjectAsync(store, "huge");
        await sampling.CancelAsync();
        await sampler;
        await store.DeleteAsync("huge", Ct);

        Assert.IsType<PutOutcome.Created>(outcome);
        Assert.Equal(written, read);
        Assert.True(peak < 400L * 1024 * 1024, $"managed heap reached {peak / 1048576} MiB while streaming 1 GiB through {backend}");
    }

    private static async Task<(PutOutcome, string)> PutGeneratedAsync(IObjectStore store, string key, long size, int seed)
    {
        await using var source = new GeneratedStream(size, seed);
        var outcome = await store.PutIfAbsentAsync(key, source, new ObjectMetadata(), Ct);
        return (outcome, source.Sha256);
    }

    private static async Task<string> HashOfObjectAsync(IObjectStore store, string key)
    {
        await using var obj = await store.OpenReadAsync(key, Ct) ?? throw new InvalidOperationException(key + " is missing");
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(obj.Content, Ct));
    }

    private static async Task<string> ReadAllTextAsync(IObjectStore store, string key)
    {
        await using var obj = await store.OpenReadAsync(key, Ct) ?? throw new InvalidOperationException(key + " is missing");
        return await new StreamReader(obj.Content).ReadToEndAsync(Ct);
    }

    private static MemoryStream Bytes(string text) => new(Encoding.UTF8.GetBytes(text));

    private static ObjectMetadata Meta(params string[] pairs)
    {
        var m = new ObjectMetadata();
        for (var i = 0; i < pairs.Length; i += 2) m[pairs[i]] = pairs[i + 1];
        return m;
    }
}
