using System.Buffers;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Identity;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage.Azure;

/// <summary>
/// An Azure Blob container (or prefix) as an object store. Every upload carries <c>IfNoneMatch = *</c>: on
/// Put Blob for objects that fit one request (up to 32 MiB: a 16 MiB WAL segment, every manifest record), and on the block-list
/// commit for larger ones, so a blob appears complete or not at all and is never replaced. With --lock-days the same
/// requests carry a version-level immutability policy (x-ms-immutability-policy-until-date and -mode), and the first
/// locked write of a process is read back: a service that takes the headers and keeps no policy (Azurite) is refused.
/// </summary>
/// <param name="trust">The CA files the client trusts instead of the system's, for messages; null: the system's.</param>
/// <param name="locking">The immutability policy every write carries; null: none.</param>
public sealed class AzureBlobObjectStore(BlobContainerClient container, string prefix, TlsTrust? trust = null, ObjectLock? locking = null)
    : IObjectStore, ILargeWriteConditionProbe, IRetentionProbe
{
    private LockSupportCheck? _lockSupport;
    private volatile bool _lockConfirmed;
    private volatile string? _versionSeen;

    /// <summary>
    /// Tests only: write without asking the container first whether it supports version-level immutability (Azurite cannot say
    /// yes), so that the headers of every write can be seen, and the read-back of the first one refuse what the service kept.
    /// </summary>
    internal bool SkipContainerCheck { get; init; }

    /// <summary>Objects up to this size go in one request.</summary>
    private const int SingleUploadLimit = 32 * 1024 * 1024;

    /// <summary>A block blob holds at most this many blocks.</summary>
    public const int MaxBlocks = 50_000;

    /// <summary>Blocks double every this many (<see cref="PartedUpload"/>): 50,000 blocks hold about 19 TiB, where fixed 8 MiB blocks stopped at 390 GiB.</summary>
    public const int BlocksPerStep = 5000;

    /// <inheritdoc />
    public string Description => $"azure://{container.Name}/{prefix.TrimEnd('/')}";

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => this;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => this;

    /// <summary>Blobs asked for per listing request (the service's maximum is 5000).</summary>
    public int ListPageSize { get; init; } = 5000;

    /// <inheritdoc />
    public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        if (content.CanSeek && content.Length - content.Position <= SingleUploadLimit)
            return await PutSingleAsync(key, content, metadata, ct).ConfigureAwait(false);
        // A stream: its first block decides; one that ends within it still goes in one request.
        var first = ArrayPool<byte>.Shared.Rent(PartedUpload.FirstPartSize);
        var handedOver = false;
        try
        {
            var n = await content.ReadAtLeastAsync(first.AsMemory(0, PartedUpload.FirstPartSize), PartedUpload.FirstPartSize, throwOnEndOfStream: false, ct)
                .ConfigureAwait(false);
            if (n < PartedUpload.FirstPartSize)
            {
                using var small = new MemoryStream(first, 0, n, writable: false);
                return await PutSingleAsync(key, small, metadata, ct).ConfigureAwait(false);
            }
            handedOver = true;
            return await PutStagedAsync(key, first, content, metadata, ct).ConfigureAwait(false);
        }
        finally
        {
            if (!handedOver) ArrayPool<byte>.Shared.Return(first);
        }
    }

    private async Task<PutOutcome> PutSingleAsync(string key, Stream body, ObjectMetadata metadata, CancellationToken ct)
    {
        await EnsureLockableAsync(key, ct).ConfigureAwait(false);
        var options = new BlobUploadOptions
        {
            Metadata = new Dictionary<string, string>(metadata),
            Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            TransferOptions = new StorageTransferOptions { InitialTransferSize = SingleUploadLimit, MaximumTransferSize = SingleUploadLimit },
            ImmutabilityPolicy = Policy(),
        };
        try
        {
            var info = await container.GetBlobClient(prefix + key).UploadAsync(body, options, ct).ConfigureAwait(false);
            return await CreatedAsync(key, info.Value.VersionId, ct).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (IsConditionRefusal(e))
        {
            return await StoreFaults.ExistingAsync(this, key, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(e, $"writing {key}") is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// Blocks staged under ids of this upload's own (two writers of one key never stage into each other's list), then
    /// committed with IfNoneMatch = *: the blob appears whole or not at all. Blocks never committed are discarded by the
    /// service after 7 days.
    /// </summary>
    private async Task<PutOutcome> PutStagedAsync(string key, byte[] first, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        await EnsureLockableAsync(key, ct).ConfigureAwait(false);
        var blob = container.GetBlockBlobClient(prefix + key);
        var upload = Guid.NewGuid().ToString("N");
        try
        {
            var ids = await PartedUpload.RunAsync(first, content, BlocksPerStep, MaxBlocks, $"writing {key}", async (number, data, length) =>
            {
                var id = Convert.ToBase64String(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{upload}-{number:D6}")));
                using var body = new MemoryStream(data, 0, length, writable: false);
                await blob.StageBlockAsync(id, body, cancellationToken: ct).ConfigureAwait(false);
                return id;
            }, ct).ConfigureAwait(false);
            var info = await blob.CommitBlockListAsync(ids, new CommitBlockListOptions
            {
                Metadata = new Dictionary<string, string>(metadata),
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                ImmutabilityPolicy = Policy(),
            }, ct).ConfigureAwait(false);
            return await CreatedAsync(key, info.Value.VersionId, ct).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (IsConditionRefusal(e))
        {
            return await StoreFaults.ExistingAsync(this, key, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(e, $"writing {key}") is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>The policy a write carries: until now plus the lock's days; null without --lock-days.</summary>
    private BlobImmutabilityPolicy? Policy() => locking is null ? null : new BlobImmutabilityPolicy
    {
        ExpiresOn = locking.Until(DateTimeOffset.UtcNow),
        PolicyMode = locking.Mode == LockMode.Compliance ? BlobImmutabilityPolicyMode.Locked : BlobImmutabilityPolicyMode.Unlocked,
    };

    /// <summary>
    /// A write the service took. Until one locked write of this process is seen to hold its policy, each is read back: a
    /// service or container that takes the headers and keeps no policy must not leave an archive that believes itself locked.
    /// </summary>
    private async Task<PutOutcome> CreatedAsync(string key, string? versionId, CancellationToken ct)
    {
        if (versionId is not null) _versionSeen = versionId;
        if (locking is null || _lockConfirmed) return new PutOutcome.Created();
        var info = await GetInfoAsync(key, ct).ConfigureAwait(false);
        if (info?.LockedUntil is null)
            throw new StoreUnavailableException($"writing {key}: {Endpoint} took the immutability policy of {SettingsTable.LockDays.Flag} but keeps none on the " +
                $"blob: container '{container.Name}' needs version-level immutability support (Azurite has none); the blob stays, unlocked", false);
        _lockConfirmed = true;
        return new PutOutcome.Created();
    }

    /// <summary>Before the first locked write of this process: the container must support version-level immutability.</summary>
    private Task EnsureLockableAsync(string key, CancellationToken ct) =>
        locking is null || SkipContainerCheck ? Task.CompletedTask : LazyInitializer.EnsureInitialized(ref _lockSupport, () => new(LockSupportedAsync,
            $"container '{container.Name}' has no version-level immutability support (enable it on the container or the account)")).EnsureAsync(key, ct);

    private async Task<bool> LockSupportedAsync(CancellationToken ct)
    {
        try
        {
            return (await container.GetPropertiesAsync(cancellationToken: ct).ConfigureAwait(false)).Value.HasImmutableStorageWithVersioning;
        }
        catch (Exception e) when (Translate(e, "reading the container's properties") is { } translated)
        {
            throw translated;
        }
    }

    /// <inheritdoc />
    public async Task<RetentionReport> DescribeAsync(CancellationToken ct)
    {
        try
        {
            var props = (await container.GetPropertiesAsync(cancellationToken: ct).ConfigureAwait(false)).Value;
            var versioning = _versionSeen is null ? "not seen (no write of this process answered with a version id; versioning is an account setting)"
                : "Enabled (writes answer with version ids)";
            return new RetentionReport(versioning, _versionSeen is not null, props.HasImmutableStorageWithVersioning,
                props.HasImmutableStorageWithVersioning ? "version-level immutability support on the container"
                    : "no version-level immutability support on the container", locking);
        }
        catch (Exception e) when (Translate(e, "reading the container's properties") is { } translated)
        {
            throw translated;
        }
    }

    private static bool IsConditionRefusal(RequestFailedException e) =>
        e.Status is 409 or 412 && e.ErrorCode is "BlobAlreadyExists" or "ConditionNotMet" or null;

    /// <summary>A staged block committed onto an existing blob with IfNoneMatch = * (no pre-check).</summary>
    public async Task<bool> LargeWriteRefusedAsync(string key, CancellationToken ct)
    {
        var blob = container.GetBlockBlobClient(prefix + key);
        try
        {
            using (var original = new MemoryStream("original"u8.ToArray()))
                await blob.UploadAsync(original,
                    new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } },
                    ct).ConfigureAwait(false);
            var blockId = Convert.ToBase64String("block-0001"u8);
            using (var replacement = new MemoryStream("replacement"u8.ToArray()))
                await blob.StageBlockAsync(blockId, replacement, cancellationToken: ct).ConfigureAwait(false);
            try
            {
                await blob.CommitBlockListAsync([blockId], new CommitBlockListOptions
                {
                    Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                }, ct).ConfigureAwait(false);
                return false;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412)
            {
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
            var response = await container.GetBlobClient(prefix + key).DownloadStreamingAsync(cancellationToken: ct).ConfigureAwait(false);
            var details = response.Value.Details;
            return new StoredObject(new ObjectInfo(key, details.ContentLength, new ObjectMetadata(details.Metadata)) { LockedUntil = details.ImmutabilityPolicy?.ExpiresOn },
                response.Value.Content);
        }
        catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode == "BlobNotFound")
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
            var props = await container.GetBlobClient(prefix + key).GetPropertiesAsync(cancellationToken: ct).ConfigureAwait(false);
            return new ObjectInfo(key, props.Value.ContentLength, new ObjectMetadata(props.Value.Metadata)) { LockedUntil = props.Value.ImmutabilityPolicy?.ExpiresOn };
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // HEAD has no error body: tell a missing blob from a missing container.
            if (!await ContainerExistsAsync(ct).ConfigureAwait(false))
                throw new StoreUnavailableException($"reading {key}: container '{container.Name}' does not exist at " +
                    $"{container.Uri.GetLeftPart(UriPartial.Authority)}", false, e);
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
        var pages = container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix + keyPrefix }, ct).AsPages(pageSizeHint: ListPageSize).GetAsyncEnumerator(ct);
        try
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await pages.MoveNextAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (Translate(e, $"listing {keyPrefix}") is { } translated)
                {
                    throw translated;
                }
                if (!more) yield break;
                foreach (var item in pages.Current.Values)
                    yield return new ListedObject(item.Name[prefix.Length..], item.Properties.ContentLength ?? 0);
            }
        }
        finally
        {
            await pages.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string key, CancellationToken ct)
    {
        try
        {
            return (await container.GetBlobClient(prefix + key).DeleteIfExistsAsync(cancellationToken: ct).ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException e) when (e.Status == 409 && e.ErrorCode is { } code && code.Contains("Immutab", StringComparison.OrdinalIgnoreCase))
        {
            throw new ObjectLockedException($"deleting {key}: {Endpoint} refused it ({e.ErrorCode}: immutability policy)", key, null, e);
        }
        catch (Exception e) when (Translate(e, $"deleting {key}") is { } translated)
        {
            throw translated;
        }
    }

    private async Task<bool> ContainerExistsAsync(CancellationToken ct)
    {
        try
        {
            return (await container.ExistsAsync(ct).ConfigureAwait(false)).Value;
        }
        catch (Exception e) when (Translate(e, "checking the container") is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>Nothing to do: Azure discards a blob's uncommitted blocks itself 7 days after they were staged.</summary>
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<string>>([]);

    private string Endpoint => container.Uri.GetLeftPart(UriPartial.Authority);

    /// <summary>Faults become one-line store errors (see <see cref="StoreFaults.Translate"/>); here only Azure's own.</summary>
    private StoreUnavailableException? Translate(Exception e, string what) => StoreFaults.Translate(e, what, Endpoint, trust, sdk => sdk switch
    {
        RequestFailedException { ErrorCode: "ContainerNotFound" } => new($"{what}: container '{container.Name}' does not exist at {Endpoint}", false, e),
        RequestFailedException { Status: 401 or 403 } r => new($"{what}: access denied by {Endpoint} ({r.ErrorCode}); check the credentials", false, e),
        RequestFailedException { Status: 0 or 408 or 429 or >= 500 } r => new($"{what}: {Endpoint} answered {r.Status} {r.ErrorCode}".TrimEnd(), true, e),
        RequestFailedException r => new($"{what}: {Endpoint} answered {r.Status} {r.ErrorCode}", false, e),
        AuthenticationFailedException or CredentialUnavailableException => new($"{what}: no usable Azure credential ({e.GetType().Name})", false, e),
        _ => null,
    });
}
