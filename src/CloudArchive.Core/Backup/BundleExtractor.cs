using System.Formats.Tar;
using System.Security.Cryptography;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Native;
using ZstdSharp;

namespace CloudArchive.Core.Backup;

/// <summary>Where the checked content of a bundle goes: files of a restore, or nowhere (verify).</summary>
public interface IBundleSink
{
    /// <summary>The stream a whole file's content is written to, from its start.</summary>
    Stream OpenWhole(BackupEntry target);

    /// <summary>Where a relation file's blocks are written, each at its offset.</summary>
    IBlockWriter OpenBlocks(BackupEntry target);
}

/// <summary>Writes blocks of one file at their offsets.</summary>
public interface IBlockWriter : IAsyncDisposable
{
    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> of the file.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct);
}

/// <summary>A sink that keeps nothing: verify reads and checks, writes nowhere.</summary>
public sealed class DiscardingSink : IBundleSink, IBlockWriter
{
    /// <summary>The one instance.</summary>
    public static readonly DiscardingSink Instance = new();
    /// <inheritdoc/>
    public Stream OpenWhole(BackupEntry target) => Stream.Null;
    /// <inheritdoc/>
    public IBlockWriter OpenBlocks(BackupEntry target) => this;
    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct) => ValueTask.CompletedTask;
    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// Reads one bundle of a backup and hands a sink what a <see cref="ChainTask"/> takes from it, checked: every tar entry
/// must be one its record lists at the recorded length, and the SHA-256 of each entry read (a whole file, or the
/// blocks an incremental stored of one, all of them read whether taken or not) must be its record's. Bytes are written
/// as they come, so a mismatch found at an entry's end fails the restore (the directory is not usable), never passes it.
/// </summary>
public sealed class BundleExtractor(IObjectStore store)
{
    /// <summary>Extracts <paramref name="task"/>; returns the bytes handed to the sink.</summary>
    /// <param name="progress">Bytes written, as they are.</param>
    /// <param name="opened">Told of the bundle object once it is open (verify counts the keys objects are encrypted with).</param>
    /// <remarks>
    /// With two copies of the archive (--fallback-store), a bundle that fails its checks is extracted again from the second store:
    /// the sink's files are written again from their start, with the same bytes where the first copy was right.
    /// </remarks>
    public Task<long> ExtractAsync(ChainTask task, IBundleSink sink, IProgress<long>? progress, CancellationToken ct, Action<ObjectInfo>? opened = null) =>
        task.Bundle >= 0 && task.Bundle < task.Source.Bundles.Count
            ? FallbackObjectStore.ReadCheckedAsync(store, task.Source.Bundles[task.Bundle].Key, () => ExtractOnceAsync(task, sink, progress, ct, opened))
            : ExtractOnceAsync(task, sink, progress, ct, opened);

    private async Task<long> ExtractOnceAsync(ChainTask task, IBundleSink sink, IProgress<long>? progress, CancellationToken ct, Action<ObjectInfo>? opened)
    {
        var backup = task.Source;
        if (task.Bundle < 0 || task.Bundle >= backup.Bundles.Count)
            throw new CorruptObjectException($"backup {backup.Id}'s record is corrupt: it names bundle {task.Bundle}, which it does not have");
        var bundle = backup.Bundles[task.Bundle];
        var blockSize = backup.BlockSize ?? BlockMap.DefaultBlockSize;
        // What the tar may hold: the files this bundle stores, at their stored lengths.
        var held = new Dictionary<string, (BackupEntry Entry, long Length)>(StringComparer.Ordinal);
        foreach (var e in backup.Entries)
        {
            if (e.Bundle != task.Bundle || e.Sha256 is null || e.Stored == "") continue;
            var length = e.Stored is null || !e.Blocks ? e.Size
                : BlockMap.StoredBytes(BlockRanges.TryParse(e.Stored, BlockMap.BlockCount(e.Size, blockSize))
                    ?? throw new CorruptObjectException($"backup {backup.Id}'s record is corrupt: {e.Path} lists blocks '{RestoreLayout.Printable(e.Stored)}'"),
                    e.Size, blockSize);
            if (!held.TryAdd(e.Path, (e, length)))
                throw new CorruptObjectException($"backup {backup.Id}'s record is corrupt: it lists {e.Path} twice");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        long written = 0;
        await using var obj = await store.OpenReadAsync(bundle.Key, ct).ConfigureAwait(false)
            ?? throw new CorruptObjectException($"backup {backup.Id} is incomplete: {bundle.Key} is missing from {store.Description}");
        opened?.Invoke(obj.Info);
        try
        {
            // Never more than the record's files can fill, however small the object that inflates.
            var bound = held.Values.Sum(h => (h.Length + 511) / 512 * 512 + 8192 + 2L * h.Entry.Path.Length) + (64 << 10);
            await using var zstd = new BoundedReadStream(ZstdPipeline.OpenDecompressor(obj.Content), bound, bundle.Key);
            // zstd on one core, tar + hashes + writes on another: a bundle that is one big relation file still uses two.
            await using var ahead = new ReadAheadStream(zstd);
            await using var tar = new TarReader(ahead, leaveOpen: true);
            while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                if (!held.TryGetValue(entry.Name, out var h))
                    throw new CorruptObjectException($"{bundle.Key} holds {entry.Name}, which backup {backup.Id}'s record does not list in it");
                if (entry.Length != h.Length || !seen.Add(entry.Name))
                    throw new CorruptObjectException($"backup {backup.Id} is corrupt: {entry.Name} in {bundle.Key} is not the file its record " +
                        $"lists ({entry.Length} bytes, recorded {h.Length}), or comes twice");
                if (!task.Pieces.TryGetValue(entry.Name, out var piece)) continue;
                var data = entry.DataStream ?? Stream.Null;
                written += piece.Take is null
                    ? await CopyWholeAsync(backup, bundle, piece, data, sink, progress, ct).ConfigureAwait(false)
                    : await CopyBlocksAsync(backup, bundle, piece, h.Entry, data, blockSize, sink, progress, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is ZstdException or InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {bundle.Key} does not decode ({e.Message})", e);
        }
        if (task.Pieces.Keys.FirstOrDefault(p => !seen.Contains(p)) is { } lost)
            throw new CorruptObjectException($"backup {backup.Id} is incomplete: {lost} is missing from {bundle.Key}");
        return written;
    }

    private static async Task<long> CopyWholeAsync(BackupRecord backup, BackupBundle bundle, ChainPiece piece, Stream data, IBundleSink sink,
        IProgress<long>? progress, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 17);
        long total = 0;
        try
        {
            await using var to = sink.OpenWhole(piece.Target);
            int n;
            while ((n = await data.ReadAsync(buffer.AsMemory(0, 1 << 17), ct).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                total += n;
                progress?.Report(n);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        var got = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (got != piece.Target.Sha256)
            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {piece.Held.Path} in {bundle.Key} has SHA-256 {got}, recorded {piece.Target.Sha256}");
        return total;
    }

    private static async Task<long> CopyBlocksAsync(BackupRecord backup, BackupBundle bundle, ChainPiece piece, BackupEntry held, Stream data,
        int blockSize, IBundleSink sink, IProgress<long>? progress, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var count = BlockMap.BlockCount(held.Size, blockSize);
        var stored = held.Stored is null ? BlockRanges.All(count) : BlockRanges.TryParse(held.Stored, count)!;
        var take = piece.Take!;
        var targetBlocks = BlockMap.BlockCount(piece.Target.Size, blockSize);
        // A run of stored blocks is contiguous in the tar entry and in the file: it is read, hashed and (the part of it
        // taken) written in chunks of up to 128 KiB, not block by block. Not larger: on the benchmark machine (Linux 6.18, ext4)
        // a 1 MiB or 512 KiB pwrite into a file created sparse at its size cost 3-4x the kernel time of 128 KiB ones for the
        // same bytes (large page-cache folios), and a 4 GiB restore spent 40 % of its CPU copying into the page cache.
        const int Chunk = 1 << 17;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Chunk);
        long total = 0, taken = 0;
        try
        {
            await using var writer = sink.OpenBlocks(piece.Target);
            foreach (var (first, last) in stored.Runs)
                foreach (var (x, y, wanted) in Split(first, last, take))
                {
                    if (wanted && (y >= targetBlocks || BlockMap.BlockLength(y, held.Size, blockSize) != BlockMap.BlockLength(y, piece.Target.Size, blockSize)))
                        throw new CorruptObjectException($"backup {backup.Id} is corrupt: block {y} of {held.Path} in {bundle.Key} is not as long as the " +
                            "restored file's");
                    var offset = x * blockSize;
                    var end = y * blockSize + BlockMap.BlockLength(y, held.Size, blockSize);
                    while (offset < end)
                    {
                        var n = (int)Math.Min(Chunk, end - offset);
                        await data.ReadExactlyAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        sha.AppendData(buffer, 0, n);
                        if (wanted)
                        {
                            await writer.WriteAsync(offset, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                            progress?.Report(n);
                            total += n;
                        }
                        offset += n;
                    }
                    if (wanted) taken += y - x + 1;
                }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        if (taken != take.Count)
            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {held.Path} in {bundle.Key} lacks blocks its chain needs from it");
        var got = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (got != held.Sha256)
            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {held.Path} in {bundle.Key} has SHA-256 {got}, recorded {held.Sha256}");
        return total;
    }

    /// <summary>Blocks <paramref name="first"/> to <paramref name="last"/> cut where membership in <paramref name="take"/> changes.</summary>
    private static List<(long First, long Last, bool Taken)> Split(long first, long last, BlockRanges take)
    {
        var parts = new List<(long, long, bool)>();
        var next = first;
        foreach (var (a, b) in take.Intersect(BlockRanges.FromRun(first, last)).Runs)
        {
            if (a > next) parts.Add((next, a - 1, false));
            parts.Add((a, b, true));
            next = b + 1;
        }
        if (next <= last) parts.Add((next, last, false));
        return parts;
    }
}
