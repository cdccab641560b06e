using System.Collections.Concurrent;

namespace CloudArchive.Core.Storage;

/// <summary>
/// A store read as another one, except for the objects staged in local files: a staged key is read from its file, so
/// the checks that read an object through a store (decryption, the manifest's records, the bundle and dump readers)
/// prove exactly the bytes that were downloaded once and will be written elsewhere, not a second download. Read only.
/// </summary>
public sealed class StagedObjectStore(IObjectStore inner) : IObjectStore
{
    private readonly ConcurrentDictionary<string, (string Path, ObjectInfo Info)> _staged = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public string Description => inner.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => null;

    /// <summary>From now on <paramref name="info"/>'s key reads the file at <paramref name="path"/> (which the caller owns and removes).</summary>
    public void Stage(ObjectInfo info, string path) => _staged[info.Key] = (path, info);

    /// <summary>The key reads the inner store again.</summary>
    public void Unstage(string key) => _staged.TryRemove(key, out _);

    /// <inheritdoc />
    public Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
    {
        if (!_staged.TryGetValue(key, out var staged)) return inner.OpenReadAsync(key, ct);
        Stream file = new FileStream(staged.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Task.FromResult<StoredObject?>(new StoredObject(staged.Info, file));
    }

    /// <inheritdoc />
    public Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) =>
        _staged.TryGetValue(key, out var staged) ? Task.FromResult<ObjectInfo?>(staged.Info) : inner.GetInfoAsync(key, ct);

    /// <inheritdoc />
    public IAsyncEnumerable<ListedObject> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);

    /// <inheritdoc />
    public Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct) =>
        throw new InvalidOperationException("a staged store is read only");

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string key, CancellationToken ct) => throw new InvalidOperationException("a staged store is read only");

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        throw new InvalidOperationException("a staged store is read only");
}
