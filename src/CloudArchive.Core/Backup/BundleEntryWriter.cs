using System.Formats.Tar;
using System.Security.Cryptography;
using CloudArchive.Native;

namespace CloudArchive.Core.Backup;

/// <summary>
/// Adds entries to one bundle being written (<see cref="BundleWriter.WriteAsync"/>) and lists them for the backup's record:
/// a whole file with its SHA-256, a relation file with its block map too; in an incremental, a file its reference has is
/// compared first and only what differs is stored (the changed blocks, or the whole file), an unchanged one not at all.
/// Where the server's WAL summaries prove which blocks of a relation file may have changed (<see cref="WalSummaryPlan"/>),
/// only those are read. Files are read as exactly the size they were listed with (<see cref="SnapshotReadStream"/>).
/// </summary>
public sealed class BundleEntryWriter
{
    private readonly TarWriter _tar;
    private readonly NativeByteList _maps;
    private readonly int _index;
    private readonly int _blockSize;
    private readonly ChainMaps? _reference;
    private readonly IProgress<long>? _progress;
    private readonly WalSummaryPlan? _summaries;
    private readonly List<BackupEntry> _entries = [];

    internal BundleEntryWriter(TarWriter tar, NativeByteList maps, int index, int blockSize, ChainMaps? reference, IProgress<long>? progress,
        WalSummaryPlan? summaries = null)
    {
        _summaries = reference is null ? null : summaries;
        _tar = tar;
        _maps = maps;
        _index = index;
        _blockSize = blockSize;
        _reference = reference;
        _progress = progress;
    }

    /// <summary>The entries added so far, in order.</summary>
    public IReadOnlyList<BackupEntry> Entries => _entries;

    /// <summary>The uncompressed bytes of file content stored so far (what an incremental found changed).</summary>
    public long StoredBytes { get; private set; }

    /// <summary>A directory: in a full backup's tar too; an incremental's tar holds only changed content, its record every directory.</summary>
    public async Task AddDirectoryAsync(string path, int mode, CancellationToken ct)
    {
        if (_reference is null)
            await _tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, path) { Mode = (UnixFileMode)mode }, ct).ConfigureAwait(false);
        _entries.Add(new BackupEntry(path, _index, 0, null, mode));
    }

    /// <summary>
    /// A file of the data directory, read as <paramref name="size"/> bytes: compared with the reference's when there is
    /// one of the same kind (a relation file block by block against its map, another by its SHA-256), else stored whole;
    /// a relation file whose changes the WAL summaries tell: only the blocks they name.
    /// </summary>
    public async Task AddFileAsync(string path, int mode, FileStream file, long size, CancellationToken ct)
    {
        var was = _reference?.Find(path);
        if (_summaries?.BlocksToRead(path, size, was) is { } blocks)
        {
            _progress?.Report(size);
            StoredBytes += await WriteBlocksAsync(path, mode, file, size, blocks, new byte[BlockMap.BlockCount(size, _blockSize) * BlockMap.HashBytes], ct)
                .ConfigureAwait(false);
        }
        else if (was is not null && was.Blocks == BlockMap.IsRelationFile(path))
            StoredBytes += await WriteChangesAsync(path, mode, file, size, was, _reference!, ct).ConfigureAwait(false);
        else
        {
            // A relation file of 1 MiB or more is read past the page cache (DirectReadStream): filling and reclaiming the cache
            // was most of a full backup's kernel time.
            await using var direct = OpenDirect(path, file, size);
            await AddWholeAsync(path, mode, (Stream?)direct ?? file, size, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A reader of a relation file of 1 MiB or more past the page cache; null: read <paramref name="file"/> as it is.</summary>
    private static DirectReadStream? OpenDirect(string path, FileStream file, long size) =>
        size >= 1 << 20 && size % DirectFileWriter.Alignment == 0 && BlockMap.IsRelationFile(path)
            ? DirectReadStream.TryOpen(file.Name, file.SafeFileHandle, size) : null;

    /// <summary>A file stored whole from <paramref name="content"/> (left open), read as <paramref name="size"/> bytes.</summary>
    public async Task AddWholeAsync(string path, int mode, Stream content, long size, CancellationToken ct)
    {
        _progress?.Report(size);
        await WriteWholeAsync(path, mode, content, size, ct).ConfigureAwait(false);
        StoredBytes += size;
    }

    /// <summary>A whole file into the tar; a relation file with its block map, another with its SHA-256.</summary>
    private async Task WriteWholeAsync(string path, int mode, Stream content, long size, CancellationToken ct)
    {
        // A relation file's map goes straight into the bundle's maps.
        var hasher = BlockMap.IsRelationFile(path) ? new BlockHasher(_blockSize, _maps) : null;
        await using var snapshot = new SnapshotReadStream(content, size, ownsFile: false, hasher);
        await _tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, path) { Mode = (UnixFileMode)mode, DataStream = snapshot }, ct)
            .ConfigureAwait(false);
        if (hasher is null)
        {
            _entries.Add(new BackupEntry(path, _index, size, snapshot.Sha256(), mode));
            return;
        }
        _entries.Add(new BackupEntry(path, _index, size, snapshot.Sha256(), mode) { Blocks = true, MapSha256 = hasher.Finish() });
    }

    /// <summary>A file the reference has: only what differs is stored. Returns the bytes stored.</summary>
    private async Task<long> WriteChangesAsync(string path, int mode, FileStream file, long size, BackupEntry was, ChainMaps reference,
        CancellationToken ct)
    {
        _progress?.Report(size);
        if (!was.Blocks)
        {
            string sha;
            await using (var compare = new SnapshotReadStream(file, size, ownsFile: false))
            {
                await compare.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
                sha = compare.Sha256();
            }
            if (sha == was.Sha256 && size == was.Size)
            {
                _entries.Add(new BackupEntry(path, _index, size, sha, mode) { Stored = "" });
                return 0;
            }
            file.Position = 0;
            await WriteWholeAsync(path, mode, file, size, ct).ConfigureAwait(false);
            return size;
        }

        var before = await reference.MapAsync(was, ct).ConfigureAwait(false);
        byte[] map;
        using (var scratch = new NativeByteList(BlockMap.BlockCount(size, _blockSize) * BlockMap.HashBytes))
        {
            var hasher = new BlockHasher(_blockSize, scratch);
            // Compared by the blocks' hashes alone: only what is stored gets a SHA-256. Every block is read once for this, past
            // the page cache as a full backup reads it; the changed ones again (few) to be stored.
            await using var direct = OpenDirect(path, file, size);
            await using (var compare = new SnapshotReadStream((Stream?)direct ?? file, size, ownsFile: false, hasher, sha256: false))
                await compare.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
            hasher.Finish();
            map = scratch.Slice(0, checked((int)scratch.Length)).ToArray();
        }
        var changed = BlockRanges.FromSorted(ChangedBlocks(map, before, BlockMap.BlockCount(size, _blockSize)));
        return await WriteBlocksAsync(path, mode, file, size, changed, map, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Stores <paramref name="changed"/> of a relation file the reference has (read again here, their hashes written into
    /// <paramref name="map"/>, the whole file's); its other blocks are the reference's. Returns the bytes stored.
    /// </summary>
    private async Task<long> WriteBlocksAsync(string path, int mode, FileStream file, long size, BlockRanges changed, byte[] map,
        CancellationToken ct)
    {
        var count = BlockMap.BlockCount(size, _blockSize);
        long stored = 0;
        var storedSha = Convert.ToHexStringLower(SHA256.HashData(ReadOnlySpan<byte>.Empty));
        if (!changed.IsEmpty)
        {
            await using var blocks = new ChangedBlocksReadStream(file.SafeFileHandle, size, _blockSize, changed, map);
            stored = blocks.Length;
            await _tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, path) { Mode = (UnixFileMode)mode, DataStream = blocks }, ct)
                .ConfigureAwait(false);
            storedSha = blocks.Sha256();
        }
        // The map object holds the hashes of the blocks stored here; the others are the reference's.
        // (An empty file stores nothing: "", not a whole file the tar would have to hold.)
        var whole = changed.Count == count && count > 0;
        var slice = whole ? map : StoredHashes(map, changed);
        _maps.Append(slice);
        _entries.Add(new BackupEntry(path, _index, size, storedSha, mode)
        {
            Blocks = true,
            Stored = whole ? null : changed.ToString(),
            MapSha256 = BlockMap.Digest(slice),
        });
        return stored;
    }

    private static byte[] StoredHashes(byte[] map, BlockRanges blocks)
    {
        var slice = new byte[blocks.Count * BlockMap.HashBytes];
        var rank = 0;
        foreach (var j in blocks.Blocks())
            map.AsSpan((int)(j * BlockMap.HashBytes), BlockMap.HashBytes).CopyTo(slice.AsSpan(rank++ * BlockMap.HashBytes));
        return slice;
    }

    /// <summary>Blocks whose hash differs from the reference's, or that it did not have.</summary>
    private static IEnumerable<long> ChangedBlocks(byte[] map, byte[] before, long count)
    {
        var had = before.Length / BlockMap.HashBytes;
        for (long j = 0; j < count; j++)
            if (j >= had || !map.AsSpan((int)(j * BlockMap.HashBytes), BlockMap.HashBytes)
                    .SequenceEqual(before.AsSpan((int)(j * BlockMap.HashBytes), BlockMap.HashBytes)))
                yield return j;
    }
}
