using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Backup;

/// <summary>
/// What an incremental backup compares against: its reference's files and their block maps, each map read from the
/// store once its bundle is needed (a few bundles' maps cached, so memory does not grow with the cluster) and checked
/// against the reference's record before it decides anything.
/// </summary>
/// <param name="advice">Appended to the message when a map is damaged (what the operator should do).</param>
public sealed class ReferenceMaps(IObjectStore store, BackupRecord reference, string advice = "")
{
    private const int Cached = 8;
    private readonly Dictionary<string, (BackupEntry Entry, long Offset)> _files = Index(reference);
    private readonly Dictionary<int, long> _mapLengths = MapLengths(reference);
    private readonly LinkedList<(int Bundle, Task<byte[]> Map)> _cache = new();
    private readonly Lock _lock = new();

    /// <summary>The backup compared against.</summary>
    public BackupRecord Reference => reference;

    /// <summary>The reference's file at <paramref name="path"/>; null when it had none.</summary>
    public BackupEntry? Find(string path) => _files.TryGetValue(path, out var f) ? f.Entry : null;

    /// <summary>The block map of the reference's relation file <paramref name="entry"/>, checked against its record.</summary>
    public async Task<ReadOnlyMemory<byte>> MapAsync(BackupEntry entry, CancellationToken ct)
    {
        var (_, offset) = _files[entry.Path];
        var map = await BundleMapAsync(entry.Bundle, ct).ConfigureAwait(false);
        var length = BlockMap.BlockCount(entry.Size, reference.BlockSize ?? BlockMap.DefaultBlockSize) * BlockMap.HashBytes;
        if (!entry.Blocks || offset + length > map.Length || BlockMap.Digest(map.AsSpan((int)offset, (int)length)) != entry.Sha256)
            throw Damaged($"the block map of {entry.Path} in {reference.Bundles[entry.Bundle].MapKey} does not match its record");
        return map.AsMemory((int)offset, (int)length);
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
        if (bundle < 0 || bundle >= reference.Bundles.Count || reference.Bundles[bundle].MapKey is not { } key)
            throw Damaged($"bundle {bundle} has relation files but no block map");
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false) ?? throw Damaged($"{key} is missing");
        // Exactly as long as the record's maps add up to: a planted giant is refused, not read into memory.
        var length = _mapLengths.GetValueOrDefault(bundle);
        var map = new byte[length];
        if (await obj.Content.ReadAtLeastAsync(map, map.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false) != length
            || await obj.Content.ReadAsync(new byte[1], ct).ConfigureAwait(false) != 0)
            throw Damaged($"{key} is not the {length} bytes its record implies");
        return map;
    }

    private CloudArchiveException Damaged(string what) =>
        new CorruptObjectException($"backup {reference.Id} is damaged: {what}{advice}");

    private static Dictionary<int, long> MapLengths(BackupRecord reference)
    {
        var blockSize = reference.BlockSize ?? BlockMap.DefaultBlockSize;
        return reference.Entries.Where(e => e.Blocks && e.Sha256 is not null).GroupBy(e => e.Bundle)
            .ToDictionary(g => g.Key, g => g.Sum(e => BlockMap.BlockCount(e.Size, blockSize) * BlockMap.HashBytes));
    }

    private static Dictionary<string, (BackupEntry, long)> Index(BackupRecord reference)
    {
        var blockSize = reference.BlockSize ?? BlockMap.DefaultBlockSize;
        var offsets = new Dictionary<int, long>();
        var files = new Dictionary<string, (BackupEntry, long)>(StringComparer.Ordinal);
        foreach (var e in reference.Entries)
        {
            if (e.Sha256 is null) continue;
            offsets.TryGetValue(e.Bundle, out var offset);
            files.TryAdd(e.Path, (e, offset));
            if (e.Blocks) offsets[e.Bundle] = offset + BlockMap.BlockCount(e.Size, blockSize) * BlockMap.HashBytes;
        }
        return files;
    }
}
