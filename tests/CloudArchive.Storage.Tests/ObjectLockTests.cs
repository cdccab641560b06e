using System.Net;
using System.Security.Cryptography;
using Amazon.S3;
using Amazon.S3.Model;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Storage;
using CloudArchive.Storage.Azure;
using CloudArchive.Storage.S3;

namespace CloudArchive.Storage.Tests;

/// <summary>
/// --lock-days on the real servers: on a Ceph RGW bucket made with Object Lock every write (one request or multipart) is
/// locked, a locked version's delete is refused, and a second writer's version (RGW takes it despite If-None-Match) is never
/// served and makes a later put a refused one; a bucket without Object Lock is refused before anything is written. On Azurite
/// every write carries the immutability policy headers (seen on the wire), and what Azurite keeps of them (nothing) is refused.
/// </summary>
public sealed class ObjectLockTests
{
    private static readonly ObjectLock OneDay = new(1, LockMode.Governance);

    private static (IAmazonS3 Client, S3StoreSettings Settings) S3(ObjectLock? locking)
    {
        var (client, _) = Backends.RawS3();
        var settings = new S3StoreSettings(Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_S3_ENDPOINT"), "us-east-1", true, false, null, null, null,
            TlsTrust.Load(Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_CA_FILE"), SettingsTable.S3CaFile), locking);
        return (client, settings);
    }

    private static ObjectMetadata Sha(byte[] data) => new() { [ObjectMetadata.Sha256] = Convert.ToHexStringLower(SHA256.HashData(data)) };

    [Fact]
    public async Task OnAnObjectLockBucketEveryWriteIsLockedAndASecondWritersVersionIsNeverServed()
    {
        var (raw, settings) = S3(OneDay);
        var bucket = "ca-lock-" + Guid.NewGuid().ToString("N")[..12];
        await raw.PutBucketAsync(new PutBucketRequest { BucketName = bucket, ObjectLockEnabledForBucket = true });
        var store = new S3ObjectStore(settings.CreateClient(), bucket, "p/", settings);
        var first = RandomNumberGenerator.GetBytes(4096);

        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("wal/a", new MemoryStream(first), Sha(first), CancellationToken.None));
        // A stream longer than one part goes as a multipart upload (RGW ignores the lock headers of CreateMultipartUpload).
        var large = new GeneratedStream(PartedUpload.FirstPartSize + (1 << 20), 3);
        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("backups/b", large, new ObjectMetadata(), CancellationToken.None));

        foreach (var key in new[] { "p/wal/a", "p/backups/b" })
        {
            var retention = (await raw.GetObjectRetentionAsync(new GetObjectRetentionRequest { BucketName = bucket, Key = key })).Retention;
            Assert.Equal(ObjectLockRetentionMode.Governance, retention.Mode);
            Assert.InRange(retention.RetainUntilDate!.Value.ToUniversalTime(), DateTime.UtcNow.AddHours(23), DateTime.UtcNow.AddHours(25));
        }
        var info = await store.GetInfoAsync("wal/a", CancellationToken.None);
        Assert.InRange(info!.LockedUntil!.Value, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));

        // A second writer, straight to the bucket without a condition: RGW keeps both versions.
        var other = RandomNumberGenerator.GetBytes(4096);
        await raw.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = "p/wal/a", InputStream = new MemoryStream(other) });
        Assert.Equal(2, (await raw.ListVersionsAsync(new ListVersionsRequest { BucketName = bucket, Prefix = "p/wal/a" })).Versions.Count);

        await using (var read = await store.OpenReadAsync("wal/a", CancellationToken.None))
        {
            using var buffer = new MemoryStream();
            await read!.Content.CopyToAsync(buffer);
            Assert.Equal(first, buffer.ToArray());
        }
        Assert.Equal(Sha(first)[ObjectMetadata.Sha256], (await store.GetInfoAsync("wal/a", CancellationToken.None))!.Metadata.Get(ObjectMetadata.Sha256));
        var third = RandomNumberGenerator.GetBytes(4096);
        var refused = Assert.IsType<PutOutcome.AlreadyExists>(await store.PutIfAbsentAsync("wal/a", new MemoryStream(third), Sha(third), CancellationToken.None));
        Assert.Equal(Sha(first)[ObjectMetadata.Sha256], refused.Existing.Metadata.Get(ObjectMetadata.Sha256));
        var listed = new List<string>();
        await foreach (var o in store.ListAsync("wal/", CancellationToken.None)) listed.Add(o.Key);
        Assert.Equal(["wal/a"], listed);

        // The store refuses the delete of a locked version (403); the backend says so as a lock, with its date.
        var version = (await raw.ListVersionsAsync(new ListVersionsRequest { BucketName = bucket, Prefix = "p/wal/a" })).Versions[^1].VersionId;
        var denied = await Assert.ThrowsAsync<AmazonS3Exception>(() => raw.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = "p/wal/a", VersionId = version }));
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        var locked = await Assert.ThrowsAsync<ObjectLockedException>(() => store.DeleteAsync("wal/a", CancellationToken.None));
        Assert.NotNull(locked.Until);

        var described = await store.DescribeAsync(CancellationToken.None);
        Assert.Equal("Enabled", described.Versioning);
        Assert.True(described.Versioned);
        Assert.True(described.LocksSupported);
    }

    [Fact]
    public async Task LockDaysOnABucketWithoutObjectLockIsRefusedBeforeAnythingIsWritten()
    {
        var (_, settings) = S3(OneDay);
        var prefix = Guid.NewGuid().ToString("N") + "/";
        var store = new S3ObjectStore(settings.CreateClient(), Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_S3_BUCKET")!, prefix, settings);

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => store.PutIfAbsentAsync("wal/a", new MemoryStream([1, 2, 3]), new ObjectMetadata(), CancellationToken.None));

        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains("has no Object Lock", e.Message);
        Assert.Null(await Backends.OpenS3At(prefix).GetInfoAsync("wal/a", CancellationToken.None));
    }

    /// <summary>Records every request's method, path and headers as the Azure SDK sends it.</summary>
    private sealed class Recorder : HttpPipelineSynchronousPolicy
    {
        public List<(string Method, string Uri, Dictionary<string, string> Headers)> Requests { get; } = [];

        public override void OnSendingRequest(HttpMessage message)
        {
            var headers = message.Request.Headers.ToDictionary(h => h.Name.ToLowerInvariant(), h => h.Value);
            lock (Requests) Requests.Add((message.Request.Method.ToString(), message.Request.Uri.ToString(), headers));
        }
    }

    private static (AzureBlobObjectStore Store, Recorder Recorder, BlobContainerClient Container, string Prefix) Azure(bool skipContainerCheck, LockMode mode)
    {
        var trust = TlsTrust.Load(Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_CA_FILE"), SettingsTable.AzureCaFile)!;
        var recorder = new Recorder();
        var options = new BlobClientOptions { Transport = new HttpClientTransport(new HttpClient(trust.CreateHandler())) };
        options.AddPolicy(recorder, HttpPipelinePosition.PerRetry);
        var container = new BlobServiceClient(Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING"), options)
            .GetBlobContainerClient("cloudarchive-test");
        container.CreateIfNotExists();
        var prefix = Guid.NewGuid().ToString("N") + "/";
        return (new AzureBlobObjectStore(container, prefix, trust, new ObjectLock(1, mode)) { SkipContainerCheck = skipContainerCheck }, recorder, container, prefix);
    }

    [Fact]
    public async Task OnAzuriteEveryWriteCarriesTheImmutabilityPolicyAndAContainerThatKeepsNoneIsRefused()
    {
        // Azurite 3.37 has no version-level immutability: its container says so, and the check before the first write refuses.
        var (checkedStore, checkedRecorder, _, _) = Azure(skipContainerCheck: false, LockMode.Governance);
        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => checkedStore.PutIfAbsentAsync("wal/a", new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains("no version-level immutability support", e.Message);
        Assert.DoesNotContain(checkedRecorder.Requests, r => r.Method == "PUT" && !r.Uri.Contains("restype=container", StringComparison.Ordinal));

        // Past that check (tests only): Put Blob and Put Block List carry the policy; Azurite takes the headers and keeps nothing.
        var (store, recorder, container, prefix) = Azure(skipContainerCheck: true, LockMode.Compliance);
        var blob = prefix + "wal/a";
        var small = await Assert.ThrowsAsync<StoreUnavailableException>(() =>
            store.PutIfAbsentAsync("wal/a", new MemoryStream([1, 2, 3]), new ObjectMetadata(), CancellationToken.None));
        var large = await Assert.ThrowsAsync<StoreUnavailableException>(() =>
            store.PutIfAbsentAsync("backups/b", new GeneratedStream(PartedUpload.FirstPartSize + (1 << 20), 5), new ObjectMetadata(), CancellationToken.None));

        Assert.Contains("keeps none", small.Message);
        Assert.Contains("keeps none", large.Message);
        var writes = recorder.Requests.Where(r => r.Method == "PUT" && !r.Uri.Contains("comp=block&", StringComparison.Ordinal)
            && !r.Uri.Contains("restype=container", StringComparison.Ordinal)).ToList();
        Assert.Contains(writes, r => r.Uri.Contains("comp=blocklist", StringComparison.Ordinal));
        Assert.Equal(2, writes.Count);
        foreach (var w in writes)
        {
            Assert.Equal("*", w.Headers["if-none-match"]);
            Assert.Equal("Locked", w.Headers["x-ms-immutability-policy-mode"]);
            var until = DateTimeOffset.Parse(w.Headers["x-ms-immutability-policy-until-date"], System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(until, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        }
        Assert.Null((await store.GetInfoAsync("wal/a", CancellationToken.None))!.LockedUntil);
        // What Azurite 3.37 does with a policy set afterwards: not implemented (501); and the blob it did not lock is deleted.
        var set = await Assert.ThrowsAsync<global::Azure.RequestFailedException>(() => container.GetBlobClient(blob).SetImmutabilityPolicyAsync(
            new global::Azure.Storage.Blobs.Models.BlobImmutabilityPolicy { ExpiresOn = DateTimeOffset.UtcNow.AddDays(1) }));
        Assert.Equal(501, set.Status);
        Assert.True(await store.DeleteAsync("wal/a", CancellationToken.None));
    }
}
