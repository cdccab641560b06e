using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The block maps one backup stored: bundle n's map object holds, for each relation file of the bundle in entry order,
/// the hashes of the blocks this backup stored of it (all of them in a full backup, the changed ones in an incremental),
/// and the file's record gives the SHA-256 of that slice (<see cref="BackupEntry.MapSha256"/>). Map objects are read when a slice is asked for (a few cached,
/// so memory does not grow with the cluster), each exactly as long as its record implies.
/// </summary>
public sealed class BackupMaps(IObjectStore store, BackupRecord backup, string advice = "")
{
    private const int Cached = 8;
    private readonly int _blockSize = backup.BlockSize ?? BlockMap.DefaultBlockSize;
    private readonly Dictionary<string, (BackupEntry Entry, long Offset)> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<int, long> _lengths = [];
    private readonly LinkedList<(int Bundle, Task<byte[]> Map)> _cache = new();
    private readonly Lock _lock = new();
    private bool _indexed;

    /// <summary>The backup whose maps these are.</summary>
    public BackupRecord Backup => backup;

    /// <summary>The backup's file at <paramref name="path"/>; null when it has none.</summary>
    public BackupEntry? Find(string path)
    {
        Index();
        return _files.TryGetValue(path, out var f) ? f.Entry : null;
    }

    /// <summary>The blocks this backup stored of a relation file it lists.</summary>
    public BlockRanges Stored(BackupEntry entry)
    {
        var count = BlockMap.BlockCount(entry.Size, _blockSize);
        return entry.Stored is null ? BlockRanges.All(count) : BlockRanges.TryParse(entry.Stored, count)
            ?? throw new CorruptObjectException($"backup {backup.Id}'s record is corrupt: {entry.Path} lists blocks '{RestoreLayout.Printable(entry.Stored)}'");
    }

    /// <summary>The hashes of the blocks this backup stored of <paramref name="entry"/>, in block order, checked against its record.</summary>
    /// <remarks>With two copies of the archive (--fallback-store), a map object that does not match here is read from the second store.</remarks>
    public Task<ReadOnlyMemory<byte>> SliceAsync(BackupEntry entry, CancellationToken ct) =>
        entry.Bundle >= 0 && entry.Bundle < backup.Bundles.Count && backup.Bundles[entry.Bundle].MapKey is { } key
            ? FallbackObjectStore.ReadCheckedAsync(store, key, () => SliceOnceAsync(entry, ct), () => Forget(entry.Bundle))
            : SliceOnceAsync(entry, ct);

    /// <summary>Drops the cached map of a bundle (its copy in the first store failed a check).</summary>
    private void Forget(int bundle)
    {
        lock (_lock)
            for (var node = _cache.First; node is not null; node = node.Next)
                if (node.Value.Bundle == bundle)
                {
                    _cache.Remove(node);
                    return;
                }
    }

    private async Task<ReadOnlyMemory<byte>> SliceOnceAsync(BackupEntry entry, CancellationToken ct)
    {
        Index();
        if (!entry.Blocks || !_files.TryGetValue(entry.Path, out var file) || !ReferenceEquals(file.Entry, entry))
            throw Damaged($"its record lists {entry.Path} twice, or not as a relation file");
        var length = Stored(entry).Count * BlockMap.HashBytes;
        // An empty slice (an empty file, or one with nothing stored here) needs no map object.
        var (map, offset) = length == 0 ? ([], 0) : (await BundleMapAsync(entry.Bundle, ct).ConfigureAwait(false), file.Offset);
        if (offset + length > map.Length || BlockMap.Digest(map.AsSpan((int)offset, (int)length)) != entry.MapSha256)
            throw Damaged($"the block map of {entry.Path} in {backup.Bundles[entry.Bundle].MapKey} does not match its record");
        return map.AsMemory((int)offset, (int)length);
    }

    private void Index()
    {
        lock (_lock)
        {
            if (_indexed) return;
            foreach (var e in backup.Entries)
            {
                if (e.Sha256 is null) continue;
                var offset = _lengths.GetValueOrDefault(e.Bundle);
                _files.TryAdd(e.Path, (e, offset));
                if (e.Blocks) _lengths[e.Bundle] = offset + Stored(e).Count * BlockMap.HashBytes;
            }
            _indexed = true;
        }
    }

    private Task<byte[]> BundleMapAsync(int bundle, CancellationToken ct)
    {
        lock (_lock)
        {
            for (var node = _cache.First; node is not null; node = node.Next)
                if (node.Value.Bundle == bundle)
                {
                    _cache.Remove(node);
                    _cache.AddFirst(node);
                    return node.Value.Map;
                }
            var load = LoadAsync(bundle, ct);
            _cache.AddFirst((bundle, load));
            if (_cache.Count > Cached) _cache.RemoveLast();
            return load;
        }
    }

    private async Task<byte[]> LoadAsync(int bundle, CancellationToken ct)
    {
        if (bundle < 0 || bundle >= backup.Bundles.Count || backup.Bundles[bundle].MapKey is not { } key)
            throw Damaged($"bundle {bundle} has relation files but no block map");
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false) ?? throw Damaged($"{key} is missing");
        // Exactly as long as the record's maps add up to: a planted giant is refused, not read into memory.
        var length = _lengths.GetValueOrDefault(bundle);
        var map = new byte[length];
        if (await obj.Content.ReadAtLeastAsync(map, map.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false) != length
            || await obj.Content.ReadAsync(new byte[1], ct).ConfigureAwait(false) != 0)
            throw Damaged($"{key} is not the {length} bytes its record implies");
        return map;
    }

    private CorruptObjectException Damaged(string what) => new($"backup {backup.Id} is damaged: {what}{advice}");
}

