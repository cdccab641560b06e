using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using CloudArchive.Core;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage.S3;

/// <summary>
/// An S3 bucket (or prefix) as an object store. Writes carry <c>If-None-Match: *</c>: a single PutObject for
/// content of known length up to <see cref="MaxSingleRequest"/> (every WAL segment, whatever it compresses to,
/// and every manifest record) and for streams that end within one part, else a multipart upload whose
/// CompleteMultipartUpload carries the condition. Some S3-compatible servers ignore the condition on multipart
/// completion, so only streamed objects (backup bundles, dumps) go that way, under keys no other writer chooses.
/// </summary>
public sealed class S3ObjectStore(IAmazonS3 client, string bucket, string prefix, S3StoreSettings settings) : IObjectStore, ILargeWriteConditionProbe
{
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
        try
        {
            await client.PutObjectAsync(request, ct).ConfigureAwait(false);
            return new PutOutcome.Created();
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
                await client.CompleteMultipartUploadAsync(complete, ct).ConfigureAwait(false);
                completed = true;
                return new PutOutcome.Created();
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
            GetObjectResponse response;
            try
            {
                response = await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = prefix + key, ByteRange = new ByteRange("bytes=0-") },
                    ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                response = await client.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = prefix + key }, ct).ConfigureAwait(false);
            }
            return new StoredObject(new ObjectInfo(key, response.ContentLength, Metadata(response.Metadata)), response.ResponseStream);
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

    /// <inheritdoc />
    public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct)
    {
        try
        {
            var response = await client.GetObjectMetadataAsync(
                new GetObjectMetadataRequest { BucketName = bucket, Key = prefix + key }, ct).ConfigureAwait(false);
            return new ObjectInfo(key, response.ContentLength, Metadata(response.Metadata));
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
        if (await GetInfoAsync(key, ct).ConfigureAwait(false) is null) return false;
        try
        {
            await client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = prefix + key }, ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (Translate(e, $"deleting {key}") is { } translated)
        {
            throw translated;
        }
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
