using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// Client-side encryption as a layer over any backend, under the retry policy. With a key configured, every object's
/// content and metadata are encrypted (<see cref="ObjectEnvelope"/>); clear metadata holds only the key id and a
/// keyed MAC of the real metadata, which is how an identical re-push (also after a lost response) is still told
/// from different content. Objects written before encryption was turned on stay readable; an encrypted object is
/// never read without its key. Names stay readable: listings and expire work without the key. Every encrypted object
/// is bound to the store's archive id (its marker, <see cref="StoreMarker"/>): the same ciphertext planted in another
/// archive under the same key is corrupt there. A store without a marker and without a manifest is new: the first
/// encrypted write marks it with a fresh archive id.
/// </summary>
public sealed class EncryptedObjectStore(IObjectStore inner, KeyRing keys) : IObjectStore
{
    /// <summary>What this process wrote: reading its metadata back needs no second request to decrypt it.</summary>
    private readonly ConcurrentDictionary<string, (string Mac, ObjectMetadata Metadata)> _written = new(StringComparer.Ordinal);

    /// <summary>The store's archive id as read once; null until read (a boxed null: the store has none).</summary>
    private StrongBox<string?>? _archiveId;

    /// <summary>Set once a writer found no archive id and the store's manifest, which makes it an older store, not a new one.</summary>
    private bool _olderStore;

    /// <inheritdoc />
    public MirroredObjectStore? Mirror => inner.Mirror;

    /// <inheritdoc />
    public string Description => inner.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => inner.LargeWriteProbe;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => inner.RetentionProbe;

    /// <summary>The configured keys.</summary>
    public KeyRing Keys => keys;

    /// <inheritdoc />
    public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        // The marker only says "this is a CloudArchive store", and the local backend reads it itself.
        if (keys.Current is not { } k || key == StoreLayout.StoreMarkerKey)
            return await inner.PutIfAbsentAsync(key, content, metadata, ct).ConfigureAwait(false);
        var mac = k.Mac(metadata);
        var clear = new ObjectMetadata { [ObjectEnvelope.KeyIdMetadata] = k.Id, [ObjectEnvelope.MacMetadata] = mac };
        var archiveId = await ArchiveIdForWriteAsync(ct).ConfigureAwait(false);
        PutOutcome outcome;
        await using (var encrypted = new EncryptingStream(content, key, metadata, k, archiveId))
            outcome = await inner.PutIfAbsentAsync(key, encrypted, clear, ct).ConfigureAwait(false);
        if (outcome is PutOutcome.AlreadyExists exists)
            return new PutOutcome.AlreadyExists(await RevealAsync(exists.Existing, metadata, ct).ConfigureAwait(false));
        _written[key] = (mac, new ObjectMetadata(metadata));
        return outcome;
    }

    /// <inheritdoc />
    public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) =>
        await inner.GetInfoAsync(key, ct).ConfigureAwait(false) is { } info ? await RevealAsync(info, null, ct).ConfigureAwait(false) : null;

    /// <inheritdoc />
    public async Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
    {
        // The marker is read beside the object (once per process), so a fetch waits for one round trip, not two.
        var archiveId = keys.Keys.Count > 0 && key != StoreLayout.StoreMarkerKey ? ArchiveIdAsync(ct) : null;
        var obj = await inner.OpenReadAsync(key, ct).ConfigureAwait(false);
        if (obj is null) return null;
        try
        {
            var start = new byte[ObjectEnvelope.MagicLength];
            var n = await obj.Content.ReadAtLeastAsync(start, start.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            var content = new PrefixedStream(start.AsMemory(0, n), obj.Content);
            if (!ObjectEnvelope.IsEncrypted(start.AsSpan(0, n)))
            {
                RefusePlainIfRequired(key);
                return new StoredObject(obj.Info, content);
            }
            var bound = archiveId is null ? null : await archiveId.ConfigureAwait(false);
            // No marker when this read began: a writer may have marked the store since (its first encrypted write), and this
            // object, written after its marker, is bound to that id. Read the marker again, now that the object exists.
            if (bound is null && archiveId is not null && _archiveId is null) bound = await ArchiveIdAsync(ct).ConfigureAwait(false);
            var (metadata, plaintext) = await DecryptingStream.OpenAsync(content, key, keys, bound, $"{key} in {Description}", ct).ConfigureAwait(false);
            metadata[ObjectEnvelope.KeyIdMetadata] = obj.Info.Metadata.Get(ObjectEnvelope.KeyIdMetadata) ?? "";
            return new StoredObject(obj.Info with { Metadata = metadata }, plaintext) { Authenticated = true };
        }
        catch
        {
            await obj.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ListedObject> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        inner.RemoveAbandonedWritesAsync(before, dryRun, ct);

    /// <summary>
    /// An object's real metadata. Plain objects carry it in the clear. For an encrypted one: <paramref name="ours"/>
    /// when its MAC matches (an identical object: no need to read it), what this process wrote under that MAC, or else
    /// the metadata in its encrypted header (one read of the object's start).
    /// </summary>
    private async Task<ObjectInfo> RevealAsync(ObjectInfo info, ObjectMetadata? ours, CancellationToken ct)
    {
        if (info.Metadata.Get(ObjectEnvelope.KeyIdMetadata) is not { } id)
        {
            RefusePlainIfRequired(info.Key);
            return info;
        }
        var mac = info.Metadata.Get(ObjectEnvelope.MacMetadata);
        if (ours is not null && keys.Find(id) is { } k && k.Mac(ours) == mac)
            return info with { Metadata = WithKeyId(ours, id) };
        if (_written.TryGetValue(info.Key, out var mine) && mine.Mac == mac)
            return info with { Metadata = WithKeyId(mine.Metadata, id) };
        await using var obj = await OpenReadAsync(info.Key, ct).ConfigureAwait(false);
        return obj is null ? info : info with { Metadata = obj.Info.Metadata };
    }

    /// <summary>The archive id in the store's marker (kept once read); null when it has no marker (read again next time) or one made before archive ids.</summary>
    private async Task<string?> ArchiveIdAsync(CancellationToken ct)
    {
        if (_archiveId is { } known) return known.Value;
        await using var marker = await inner.OpenReadAsync(StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false);
        // No marker is not kept: the store's first encrypted write marks it, maybe another process's, any moment now.
        if (marker is null) return null;
        var id = StoreMarker.Parse(marker.Content, $"{StoreLayout.StoreMarkerKey} in {Description}").ArchiveId;
        _archiveId = new StrongBox<string?>(id);
        return id;
    }

    /// <summary>
    /// The archive id a new object is bound to. A store with neither marker nor manifest is new (a bucket or prefix
    /// nobody ran store-init on): it is marked now, with a fresh id, as store-init would (a conditional put: when two
    /// writers race, both use the marker that won). One with a manifest but no id is older: its objects stay bound to
    /// their names only, as they were.
    /// </summary>
    private async Task<string?> ArchiveIdForWriteAsync(CancellationToken ct)
    {
        var id = await ArchiveIdAsync(ct).ConfigureAwait(false);
        if (id is not null || _olderStore) return id;
        if (await inner.GetInfoAsync(StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false) is null)
        {
            if (await StoreLayout.HoldsArchiveAsync(inner, ct).ConfigureAwait(false))
            {
                _olderStore = true;
                return null;
            }
            using var marker = new MemoryStream(StoreMarker.New().Encode());
            await inner.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, marker, new ObjectMetadata(), ct).ConfigureAwait(false);
        }
        // Read again: the marker there now is ours, a racing writer's, or one written since the first look (also after a lost response).
        _archiveId = null;
        id = await ArchiveIdAsync(ct).ConfigureAwait(false);
        _olderStore = id is null;
        return id;
    }

    /// <summary>With --encryption-required a plain object (the marker aside) is what someone without the key planted.</summary>
    private void RefusePlainIfRequired(string key)
    {
        if (keys.Required && key != StoreLayout.StoreMarkerKey)
            throw new CorruptObjectException(
                $"{key} in {Description} is not encrypted, and encryption is required (--encryption-required): it was not written with a configured key");
    }

    private static ObjectMetadata WithKeyId(ObjectMetadata metadata, string id) => new(metadata) { [ObjectEnvelope.KeyIdMetadata] = id };
}
