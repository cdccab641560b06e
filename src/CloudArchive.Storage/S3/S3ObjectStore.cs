using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage.S3;

/// <summary>
/// An S3 bucket (or prefix) as an object store. Writes carry <c>If-None-Match: *</c>: a single PutObject for
/// content of known length up to <see cref="MaxSingleRequest"/> (every WAL segment, whatever it compresses to,
/// and every manifest record) and for streams that end within one part, else a multipart upload whose
/// CompleteMultipartUpload carries the condition. Some S3-compatible servers ignore the condition on multipart
/// completion, so only streamed objects (backup bundles, dumps) go that way, under keys no other writer chooses.
/// On a versioned bucket (Object Lock forces versioning) the condition may be ignored as well: every answer that carries a
/// version id is held to <see cref="ObjectVersions"/>' rule (the oldest version is the object; a later one is a refused put),
/// found from the answers themselves, so an unversioned bucket pays no request for it. With --lock-days every write carries
/// the lock (mode, retain-until, Content-MD5), checked against the bucket's Object Lock configuration before the first.
/// </summary>
public sealed class S3ObjectStore(IAmazonS3 client, string bucket, string prefix, S3StoreSettings settings)
    : IObjectStore, ILargeWriteConditionProbe, IRetentionProbe
{
    private LockSupportCheck? _lockSupport;

    /// <summary>S3 takes at most this many parts in one upload.</summary>
    public const int MaxParts = 10_000;

    /// <summary>Parts double every this many (<see cref="PartedUpload"/>): 10,000 parts hold about 3.9 TiB, where fixed 16 MiB parts stopped at 156 GiB.</summary>
    public const int PartsPerStep = 1000;

    /// <summary>
    /// Content of known length up to this size goes in one conditional request: the largest WAL segment (1 GiB) at
    /// zstd's worst case, with room to spare, and within S3's 5 GiB limit for one PutObject.
    /// </summary>
    public const long MaxSingleRequest = (1L << 30) + (64L << 20);
    private const string MetaPrefix = "x-amz-meta-";

    /// <inheritdoc />
    public string Description => $"s3://{bucket}/{prefix.TrimEnd('/')}";

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => this;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => this;

    /// <summary>Keys asked for per listing request (S3's maximum is 1000).</summary>
    public int ListPageSize { get; init; } = 1000;

    /// <inheritdoc />
    public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        var full = prefix + key;
        if (content.CanSeek && content.Length - content.Position <= MaxSingleRequest)
            return await PutSingleAsync(key, full, content, metadata, ct).ConfigureAwait(false);

        // Read the first part: a stream that ends within it still goes in one request.
        var first = ArrayPool<byte>.Shared.Rent(PartedUpload.FirstPartSize);
        var handedOver = false;
        try
        {
            var n = await content.ReadAtLeastAsync(first.AsMemory(0, PartedUpload.FirstPartSize), PartedUpload.FirstPartSize, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            if (n < PartedUpload.FirstPartSize)
            {
                using var small = new MemoryStream(first, 0, n, writable: false);
                return await PutSingleAsync(key, full, small, metadata, ct).ConfigureAwait(false);
            }
            // Not the guarantee (the condition on completion is), but it refuses a sequential re-put on
            // servers that ignore that condition, before any byte is sent.
            if (await GetInfoAsync(key, ct).ConfigureAwait(false) is { } existing)
                return new PutOutcome.AlreadyExists(existing);
            handedOver = true;
            return await PutMultipartAsync(key, full, first, content, metadata, ct).ConfigureAwait(false);
        }
        finally
        {
            if (!handedOver) ArrayPool<byte>.Shared.Return(first);
        }
    }

    private async Task<PutOutcome> PutSingleAsync(string key, string full, Stream body, ObjectMetadata metadata, CancellationToken ct)
    {
        if (settings.Lock is not null) await EnsureLockableAsync(key, ct).ConfigureAwait(false);
        var request = new PutObjectRequest
        {
            BucketName = bucket,
            Key = full,
            InputStream = body,
            AutoCloseStream = false,
            AutoResetStreamPosition = false,
            IfNoneMatch = "*",
            DisablePayloadSigning = settings.OverTls,
            DisableDefaultChecksumValidation = settings.OverTls,
        };
        Apply(request.Metadata, metadata);
        ApplyStorageOptions(request);
        if (settings.Lock is { } locking)
        {
            request.ObjectLockMode = Mode(locking);
            request.ObjectLockRetainUntilDate = locking.Until(DateTimeOffset.UtcNow).UtcDateTime;
            // S3 takes a locked object only with a checksum of its body (Content-MD5 or x-amz-checksum-*).
            request.MD5Digest = await Md5Async(body, ct).ConfigureAwait(false);
        }
        try
        {
            var response = await client.PutObjectAsync(request, ct).ConfigureAwait(false);
            return await FirstVersionAsync(key, full, response.VersionId, ct).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.PreconditionFailed)
        {
            return await StoreFaults.ExistingAsync(this, key, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(e, $"writing {key}") is { } translated)
        {
            throw translated;
        }
    }

    private async Task<PutOutcome> PutMultipartAsync(string key, string full, byte[] firstPart, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        var init = new InitiateMultipartUploadRequest { BucketName = bucket, Key = full };
        Apply(init.Metadata, metadata);
        if (settings.StorageClass is not null) init.StorageClass = new S3StorageClass(settings.StorageClass);
        if (settings.Sse is not null) init.ServerSideEncryptionMethod = new ServerSideEncryptionMethod(settings.Sse);
        if (settings.SseKmsKeyId is not null) init.ServerSideEncryptionKeyManagementServiceKeyId = settings.SseKmsKeyId;
        var until = settings.Lock?.Until(DateTimeOffset.UtcNow);
        if (settings.Lock is { } lockFirst)
        {
            await EnsureLockableAsync(key, ct).ConfigureAwait(false);
            init.ObjectLockMode = Mode(lockFirst);
            init.ObjectLockRetainUntilDate = until!.Value.UtcDateTime;
        }
        string uploadId;
        try
        {
            uploadId = (await client.InitiateMultipartUploadAsync(init, ct).ConfigureAwait(false)).UploadId;
        }
        catch (Exception e) when (Translate(e, $"writing {key}") is { } translated)
        {
            throw translated;
        }

        var completed = false;
        try
        {
            var etags = await PartedUpload.RunAsync(firstPart, content, PartsPerStep, MaxParts, $"writing {key}",
                (number, data, length) => UploadPartAsync(full, uploadId, number, data, length, ct), ct).ConfigureAwait(false);

            var complete = new CompleteMultipartUploadRequest
            {
                BucketName = bucket, Key = full, UploadId = uploadId, PartETags = etags, IfNoneMatch = "*",
            };
            try
            {
                var response = await client.CompleteMultipartUploadAsync(complete, ct).ConfigureAwait(false);
                completed = true;
                // Ceph RGW 16.2 takes the lock headers of CreateMultipartUpload and does not apply them: the lock is set on the version itself.
                if (settings.Lock is { } locking) await LockVersionAsync(key, full, response.VersionId, locking, until!.Value, ct).ConfigureAwait(false);
                return await FirstVersionAsync(key, full, response.VersionId, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.PreconditionFailed)
            {
                return await StoreFaults.ExistingAsync(this, key, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (Translate(e, $"writing {key}") is { } translated)
        {
            throw translated;
        }
        finally
        {
            if (!completed)
            {
                try
                {
                    await client.AbortMultipartUploadAsync(
                        new AbortMultipartUploadRequest { BucketName = bucket, Key = full, UploadId = uploadId },
                        CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException)
                {
                    Log.Warn($"could not abort the multipart upload of {key} ({e.Message}); a bucket lifecycle rule for incomplete uploads cleans it up");
                }
            }
        }
    }

    private async Task<PartETag> UploadPartAsync(string full, string uploadId, int number, byte[] data, int length, CancellationToken ct)
    {
        using var body = new MemoryStream(data, 0, length, writable: false);
        var response = await client.UploadPartAsync(new UploadPartRequest
        {
            BucketName = bucket, Key = full, UploadId = uploadId, PartNumber = number, InputStream = body, PartSize = length,
            DisablePayloadSigning = settings.OverTls, DisableDefaultChecksumValidation = settings.OverTls,
            MD5Digest = settings.Lock is null ? null : Convert.ToBase64String(System.Security.Cryptography.MD5.HashData(data.AsSpan(0, length))),
        }, ct).ConfigureAwait(false);
        return new PartETag(number, response.ETag);
    }

    /// <summary>A one-part multipart upload completed onto an existing key with If-None-Match: * (no pre-check).</summary>
    public async Task<bool> LargeWriteRefusedAsync(string key, CancellationToken ct)
    {
        var full = prefix + key;
        try
        {
            await client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = bucket, Key = full, ContentBody = "original", IfNoneMatch = "*",
            }, ct).ConfigureAwait(false);
            var uploadId = (await client.InitiateMultipartUploadAsync(
                new InitiateMultipartUploadRequest { BucketName = bucket, Key = full }, ct).ConfigureAwait(false)).UploadId;
            using var body = new MemoryStream("replacement"u8.ToArray());
            var part = await client.UploadPartAsync(new UploadPartRequest
            {
                BucketName = bucket, Key = full, UploadId = uploadId, PartNumber = 1, InputStream = body, PartSize = body.Length,
            }, ct).ConfigureAwait(false);
            try
            {
                await client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
                {
                    BucketName = bucket, Key = full, UploadId = uploadId, PartETags = [new PartETag(1, part.ETag)], IfNoneMatch = "*",
                }, ct).ConfigureAwait(false);
                return false;
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.PreconditionFailed)
            {
                await client.AbortMultipartUploadAsync(
                    new AbortMultipartUploadRequest { BucketName = bucket, Key = full, UploadId = uploadId }, ct).ConfigureAwait(false);
                return true;
            }
        }
        catch (Exception e) when (Translate(e, $"probing {key}") is { } translated)
        {
            throw translated;
        }
    }

    /// <inheritdoc />
    public async Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
    {
        try
        {
            // The SDK runs a whole-object GET's body through a managed MD5 to compare with the ETag: 18 % of the agent's
            // CPU on a fetch (perf, bench/RESULTS.md), for a check of the transport that TLS and this project's own
            // SHA-256 or AES-GCM of every object already make. A range from byte 0 to the end reads the same bytes
            // without it; an empty object has no byte 0 (416), so it is read plainly.
            var response = await GetAsync(prefix + key, null, ct).ConfigureAwait(false);
            // A versioned bucket: the object is its oldest version, whatever a later writer put beside it.
            if (Versioned(response.VersionId) && await OldestVersionAsync(prefix + key, ct).ConfigureAwait(false) is { } oldest
                && oldest.Id != response.VersionId)
            {
                response.Dispose();
                response = await GetAsync(prefix + key, oldest.Id, ct).ConfigureAwait(false);
            }
            return new StoredObject(new ObjectInfo(key, response.ContentLength, Metadata(response.Metadata)) { LockedUntil = Utc(response.ObjectLockRetainUntilDate) },
                response.ResponseStream);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
        {
            return null;
        }
        catch (Exception e) when (Translate(e, $"reading {key}") is { } translated)
        {
            throw translated;
        }
    }

    private async Task<GetObjectResponse> GetAsync(string full, string? versionId, CancellationToken ct)
    {
        try
        {
            return await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = full, VersionId = versionId, ByteRange = new ByteRange("bytes=0-") },
                ct).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = full, VersionId = versionId }, ct).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct)
    {
        try
        {
            var response = await client.GetObjectMetadataAsync(
                new GetObjectMetadataRequest { BucketName = bucket, Key = prefix + key }, ct).ConfigureAwait(false);
            if (Versioned(response.VersionId) && await OldestVersionAsync(prefix + key, ct).ConfigureAwait(false) is { } oldest
                && oldest.Id != response.VersionId)
                response = await client.GetObjectMetadataAsync(
                    new GetObjectMetadataRequest { BucketName = bucket, Key = prefix + key, VersionId = oldest.Id }, ct).ConfigureAwait(false);
            return new ObjectInfo(key, response.ContentLength, Metadata(response.Metadata)) { LockedUntil = Utc(response.ObjectLockRetainUntilDate) };
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
        {
            // HEAD has no body, so "no such bucket" looks like "no such key": ask the bucket once.
            await EnsureBucketAsync(ct).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (Translate(e, $"reading {key}") is { } translated)
        {
            throw translated;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ListedObject> ListAsync(string keyPrefix, [EnumeratorCancellation] CancellationToken ct)
    {
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = prefix + keyPrefix, MaxKeys = ListPageSize };
        while (true)
        {
            ListObjectsV2Response page;
            try
            {
                page = await client.ListObjectsV2Async(request, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (Translate(e, $"listing {keyPrefix}") is { } translated)
            {
                throw translated;
            }
            foreach (var o in page.S3Objects ?? [])
                yield return new ListedObject(o.Key[prefix.Length..], o.Size ?? 0);
            if (page.IsTruncated != true) yield break;
            request.ContinuationToken = page.NextContinuationToken;
        }
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string key, CancellationToken ct)
    {
        if (await GetInfoAsync(key, ct).ConfigureAwait(false) is not { } info) return false;
        try
        {
            var versions = await VersionsAsync(prefix + key, ct).ConfigureAwait(false);
            // A versioned bucket: a plain DELETE only adds a delete marker (the bytes stay, and are still billed): each version goes.
            if (versions.Any(v => Versioned(v.Id)))
            {
                var locked = 0;
                foreach (var v in versions)
                {
                    try
                    {
                        await client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = prefix + key, VersionId = v.Id }, ct).ConfigureAwait(false);
                    }
                    // RGW: "forbidden by object lock"; AWS: "... protected by object lock". Other 403s are missing rights.
                    catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.Forbidden
                        && (e.Message?.Contains("object lock", StringComparison.OrdinalIgnoreCase) == true || info.LockedUntil > DateTimeOffset.UtcNow))
                    {
                        locked++;
                    }
                }
                // A later version (a refused second write) may be locked longer than the first: its date is not told here.
                var until = info.LockedUntil > DateTimeOffset.UtcNow ? info.LockedUntil : null;
                if (locked > 0)
                    throw new ObjectLockedException($"deleting {key}: {Endpoint} refused {locked} of its {versions.Count} versions (object lock" +
                        $"{(until is { } u ? $" until {u.UtcDateTime:u}" : "")})", key, until);
                return true;
            }
            await client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = prefix + key }, ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (Translate(e, $"deleting {key}") is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// The outcome of a write the store took as <paramref name="versionId"/>: on an unversioned bucket, created; on a versioned
    /// one, created only when that version is the key's oldest, else the put was refused, exactly as a 412 (<see cref="ObjectVersions"/>).
    /// </summary>
    private async Task<PutOutcome> FirstVersionAsync(string key, string full, string? versionId, CancellationToken ct)
    {
        if (!Versioned(versionId)) return new PutOutcome.Created();
        var versions = await VersionsAsync(full, ct).ConfigureAwait(false);
        if (ObjectVersions.Won(versions, versionId!)) return new PutOutcome.Created();
        if (!versions.Any(v => v.Id == versionId))
            throw new StoreUnavailableException($"writing {key}: {Endpoint} took version {versionId} but does not list it", transient: true);
        // Never served (reads take the oldest); without a lock it is removed at once, with one expire removes it after its date.
        if (settings.Lock is null)
        {
            try
            {
                await client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = full, VersionId = versionId }, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e)
            {
                Log.Warn($"{key}: could not remove the refused second version {versionId} ({e.ErrorCode}); reads never serve it");
            }
        }
        return await StoreFaults.ExistingAsync(this, key, ct).ConfigureAwait(false);
    }

    /// <summary>A version id from an answer: a real one means the bucket keeps versions ("null" is Suspended versioning's plain object).</summary>
    private static bool Versioned(string? versionId) => !string.IsNullOrEmpty(versionId) && versionId != "null";

    /// <summary>The versions of exactly <paramref name="full"/> (delete markers too), newest first, as S3 lists them.</summary>
    private async Task<List<ObjectVersion>> VersionsAsync(string full, CancellationToken ct)
    {
        var found = new List<ObjectVersion>();
        var request = new ListVersionsRequest { BucketName = bucket, Prefix = full };
        while (true)
        {
            var page = await client.ListVersionsAsync(request, ct).ConfigureAwait(false);
            foreach (var v in page.Versions ?? [])
                if (v.Key == full) found.Add(new ObjectVersion(v.VersionId ?? "null", v.IsDeleteMarker == true));
            // Keys that only start with this one sort after it: once past it, nothing more is ours.
            if (page.IsTruncated != true || (page.Versions?.Count > 0 && string.CompareOrdinal(page.Versions[^1].Key, full) > 0)) return found;
            request.KeyMarker = page.NextKeyMarker;
            request.VersionIdMarker = page.NextVersionIdMarker;
        }
    }

    private async Task<ObjectVersion?> OldestVersionAsync(string full, CancellationToken ct) =>
        ObjectVersions.Oldest(await VersionsAsync(full, ct).ConfigureAwait(false));

    private Task EnsureLockableAsync(string key, CancellationToken ct) => LazyInitializer.EnsureInitialized(ref _lockSupport, () => new(LockSupportedAsync,
        $"bucket '{bucket}' has no Object Lock (it must be made with it: aws s3api create-bucket --object-lock-enabled-for-bucket)")).EnsureAsync(key, ct);

    private async Task<bool> LockSupportedAsync(CancellationToken ct)
    {
        try
        {
            return await LockEnabledAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(e, "reading the bucket's Object Lock configuration") is { } translated)
        {
            throw translated;
        }
    }

    private async Task<bool> LockEnabledAsync(CancellationToken ct)
    {
        try
        {
            var config = await client.GetObjectLockConfigurationAsync(new GetObjectLockConfigurationRequest { BucketName = bucket }, ct).ConfigureAwait(false);
            return config.ObjectLockConfiguration?.ObjectLockEnabled == ObjectLockEnabled.Enabled;
        }
        catch (AmazonS3Exception e) when (e.ErrorCode == "ObjectLockConfigurationNotFoundError")
        {
            return false;
        }
    }

    /// <summary>Sets the lock on a version written by a multipart upload and reads it back: no locked write is left unlocked quietly.</summary>
    private async Task LockVersionAsync(string key, string full, string? versionId, ObjectLock locking, DateTimeOffset until, CancellationToken ct)
    {
        var head = await client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = bucket, Key = full, VersionId = versionId }, ct)
            .ConfigureAwait(false);
        if (Utc(head.ObjectLockRetainUntilDate) is { } held && held >= until.AddSeconds(-1)) return;
        await client.PutObjectRetentionAsync(new PutObjectRetentionRequest
        {
            BucketName = bucket, Key = full, VersionId = versionId,
            Retention = new ObjectLockRetention
            {
                Mode = locking.Mode == LockMode.Compliance ? ObjectLockRetentionMode.Compliance : ObjectLockRetentionMode.Governance,
                RetainUntilDate = until.UtcDateTime,
            },
        }, ct).ConfigureAwait(false);
        head = await client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = bucket, Key = full, VersionId = versionId }, ct)
            .ConfigureAwait(false);
        if (Utc(head.ObjectLockRetainUntilDate) is null)
            throw new StoreUnavailableException($"writing {key}: {Endpoint} does not keep the object lock of a multipart upload", transient: false);
    }

    /// <inheritdoc />
    public async Task<RetentionReport> DescribeAsync(CancellationToken ct)
    {
        try
        {
            var versioning = (await client.GetBucketVersioningAsync(new GetBucketVersioningRequest { BucketName = bucket }, ct).ConfigureAwait(false))
                .VersioningConfig?.Status?.Value;
            var status = string.IsNullOrEmpty(versioning) || versioning == "Off" ? "off" : versioning;
            var locks = await LockEnabledAsync(ct).ConfigureAwait(false);
            return new RetentionReport(status, status == "Enabled", locks,
                locks ? "Object Lock enabled on the bucket (GetObjectLockConfiguration)" : "no Object Lock configuration on the bucket", settings.Lock);
        }
        catch (Exception e) when (Translate(e, "reading the bucket's versioning and Object Lock configuration") is { } translated)
        {
            throw translated;
        }
    }

    private static ObjectLockMode Mode(ObjectLock locking) => locking.Mode == LockMode.Compliance ? ObjectLockMode.Compliance : ObjectLockMode.Governance;

    private static DateTimeOffset? Utc(DateTime? date) => date is { } d
        ? new DateTimeOffset(d.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(d, DateTimeKind.Utc) : d.ToUniversalTime())
        : null;

    private static async Task<string> Md5Async(Stream body, CancellationToken ct)
    {
        var start = body.Position;
        var hash = await System.Security.Cryptography.MD5.HashDataAsync(body, ct).ConfigureAwait(false);
        body.Position = start;
        return Convert.ToBase64String(hash);
    }

    private async Task EnsureBucketAsync(CancellationToken ct)
    {
        try
        {
            await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, MaxKeys = 1, Prefix = prefix }, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(e, "checking the bucket") is { } translated)
        {
            throw translated;
        }
    }

    private void ApplyStorageOptions(PutObjectRequest request)
    {
        if (settings.StorageClass is not null) request.StorageClass = new S3StorageClass(settings.StorageClass);
        if (settings.Sse is not null) request.ServerSideEncryptionMethod = new ServerSideEncryptionMethod(settings.Sse);
        if (settings.SseKmsKeyId is not null) request.ServerSideEncryptionKeyManagementServiceKeyId = settings.SseKmsKeyId;
    }

    private static void Apply(MetadataCollection target, ObjectMetadata metadata)
    {
        foreach (var (k, v) in metadata) target[k] = v;
    }

    private static ObjectMetadata Metadata(MetadataCollection source)
    {
        var result = new ObjectMetadata();
        foreach (var k in source.Keys)
        {
            var name = k.StartsWith(MetaPrefix, StringComparison.OrdinalIgnoreCase) ? k[MetaPrefix.Length..] : k;
            result[name.ToLowerInvariant()] = source[k];
        }
        return result;
    }

    /// <summary>Faults become one-line store errors (see <see cref="StoreFaults.Translate"/>); here only S3's own.</summary>
    private StoreUnavailableException? Translate(Exception e, string what) => StoreFaults.Translate(e, what, Endpoint, settings.Trust, sdk => sdk switch
    {
        AmazonS3Exception { ErrorCode: "NoSuchBucket" } => new($"{what}: bucket '{bucket}' does not exist at {Endpoint}", false, e),
        AmazonS3Exception { StatusCode: HttpStatusCode.Forbidden } s =>
            new($"{what}: access denied by {Endpoint} ({s.ErrorCode}); check the credentials and the bucket policy", false, e),
        AmazonS3Exception { StatusCode: HttpStatusCode.BadRequest } s =>
            new($"{what}: {Endpoint} rejected the request ({s.ErrorCode}: {s.Message})", false, e),
        AmazonS3Exception s when (int)s.StatusCode >= 500 || (int)s.StatusCode == 429 || s.StatusCode == HttpStatusCode.RequestTimeout
            || s.ErrorCode is "SlowDown" or "ConditionalRequestConflict" =>
            new($"{what}: {Endpoint} answered {(int)s.StatusCode} {s.ErrorCode}", true, e),
        AmazonS3Exception s => new($"{what}: {Endpoint} answered {(int)s.StatusCode} {s.ErrorCode}: {s.Message}", false, e),
        // The SDK's message lists every provider it tried, several hundred characters: say it in one short line.
        AmazonClientException c when c.Message.StartsWith("Failed to resolve AWS credentials", StringComparison.Ordinal) =>
            new($"{what}: no AWS credentials for {Environment.UserName}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, " +
                $"~/.aws/credentials, a web identity) in the environment of the user that runs cloudarchive", false, e),
        AmazonClientException c when !StoreFaults.IsTransport(c) => new($"{what}: {c.Message}", false, e),
        _ => null,
    });

    /// <summary>Aborts the multipart uploads under this store's prefix started before <paramref name="before"/> (a killed put's).</summary>
    public async Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct)
    {
        var found = new List<string>();
        try
        {
            var request = new ListMultipartUploadsRequest { BucketName = bucket, Prefix = prefix };
            while (true)
            {
                var page = await client.ListMultipartUploadsAsync(request, ct).ConfigureAwait(false);
                foreach (var upload in page.MultipartUploads ?? [])
                {
                    if (upload.Initiated is not { } started || started.ToUniversalTime() >= before.UtcDateTime) continue;
                    found.Add($"{upload.Key[prefix.Length..]} (multipart upload {upload.UploadId})");
                    if (!dryRun)
                        await client.AbortMultipartUploadAsync(
                            new AbortMultipartUploadRequest { BucketName = bucket, Key = upload.Key, UploadId = upload.UploadId }, ct).ConfigureAwait(false);
                }
                if (page.IsTruncated != true) break;
                request.KeyMarker = page.NextKeyMarker;
                request.UploadIdMarker = page.NextUploadIdMarker;
            }
        }
        catch (Exception e) when (Translate(e, "listing unfinished multipart uploads") is { } translated)
        {
            throw translated;
        }
        return found;
    }

    private string Endpoint => settings.Endpoint ?? $"S3 ({settings.Region ?? "default region"})";
}
