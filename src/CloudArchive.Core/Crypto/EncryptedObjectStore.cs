using System.Collections.Concurrent;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// Client-side encryption as a layer over any backend, under the retry policy. With a key configured, every object's
/// content and metadata are encrypted (<see cref="ObjectEnvelope"/>); clear metadata holds only the key id and a
/// keyed MAC of the real metadata, which is how an identical re-push (also after a lost response) is still told
/// from different content. Objects written before encryption was turned on stay readable; an encrypted object is
/// never read without its key. Names stay readable: listings and expire work without the key.
/// </summary>
public sealed class EncryptedObjectStore(IObjectStore inner, KeyRing keys) : IObjectStore
{
    /// <summary>What this process wrote: reading its metadata back needs no second request to decrypt it.</summary>
    private readonly ConcurrentDictionary<string, (string Mac, ObjectMetadata Metadata)> _written = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public string Description => inner.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => inner.LargeWriteProbe;

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
        PutOutcome outcome;
        await using (var encrypted = new EncryptingStream(content, key, metadata, k))
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
            var (metadata, plaintext) = await DecryptingStream.OpenAsync(content, key, keys, $"{key} in {Description}", ct).ConfigureAwait(false);
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

    /// <summary>With --encryption-required a plain object (the marker aside) is what someone without the key planted.</summary>
    private void RefusePlainIfRequired(string key)
    {
        if (keys.Required && key != StoreLayout.StoreMarkerKey)
            throw new CorruptObjectException(
                $"{key} in {Description} is not encrypted, and encryption is required (--encryption-required): it was not written with a configured key");
    }

    private static ObjectMetadata WithKeyId(ObjectMetadata metadata, string id) => new(metadata) { [ObjectEnvelope.KeyIdMetadata] = id };
}
