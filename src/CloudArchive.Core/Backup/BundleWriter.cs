using System.Formats.Tar;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Native;

namespace CloudArchive.Core.Backup;

/// <summary>
/// Writes the bundles of one backup, the format <see cref="BundleExtractor"/> reads: each bundle a tar (PAX) compressed
/// with zstd, streamed into a conditional put at <c>backups/ID/data/NNNNN.tar.zst</c>, and beside it, when it holds
/// relation files, their block maps in entry order (<c>NNNNN.map</c>). What goes into a bundle, and how an incremental's
/// files are compared with its reference, is <see cref="BundleEntryWriter"/>'s.
/// </summary>
/// <param name="blockSize">The cluster's page size: the unit of block maps and of an incremental's changed blocks.</param>
/// <param name="reference">The chain an incremental or differential builds on; null: a full backup.</param>
/// <param name="progress">The size of each file as it goes into a bundle.</param>
/// <param name="summaries">With a reference: the blocks the server's WAL summaries say changed since it (sealed); null: every file is read.</param>
public sealed class BundleWriter(IObjectStore store, string backupId, int compressionLevel, int blockSize, ChainMaps? reference = null,
    IProgress<long>? progress = null, WalSummaryPlan? summaries = null)
{
    /// <summary>
    /// Writes bundle <paramref name="index"/>: <paramref name="fill"/> adds its entries, while the store already takes the
    /// compressed bytes. Returns its record and entries once the bundle and its map are stored.
    /// </summary>
    public async Task<WrittenBundle> WriteAsync(int index, Func<BundleEntryWriter, Task> fill, CancellationToken ct)
    {
        var key = StoreLayout.BackupBundleKey(backupId, index);
        using var maps = new NativeByteList();
        BundleEntryWriter? entries = null;
        var (outcome, written) = await StreamedPut.PutAsync(store, key, new ObjectMetadata { [ObjectMetadata.Compression] = ZstdPipeline.Compression },
            async output =>
            {
                // zstd on every core inside each bundle too: one big relation file (up to 1 GiB) is one bundle.
                await using var zstd = ZstdPipeline.OpenCompressor(output, compressionLevel, workers: Environment.ProcessorCount);
                await using var tar = new TarWriter(zstd, TarEntryFormat.Pax, leaveOpen: true);
                entries = new BundleEntryWriter(tar, maps, index, blockSize, reference, progress, summaries);
                await fill(entries).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
        if (outcome is PutOutcome.AlreadyExists) throw Repeated(key);
        // The bundle's block maps, in entry order: an incremental compares with them, a restore checks every block against them.
        string? mapKey = null;
        if (maps.Length > 0)
        {
            mapKey = StoreLayout.BackupMapKey(backupId, index);
            await using var mapBytes = maps.OpenRead();
            if (await store.PutIfAbsentAsync(mapKey, mapBytes, new ObjectMetadata(), ct).ConfigureAwait(false) is PutOutcome.AlreadyExists)
                throw Repeated(mapKey);
        }
        return new WrittenBundle(new BackupBundle(key, entries!.StoredBytes, written + maps.Length) { MapKey = mapKey }, entries.Entries);
    }

    private CloudArchiveException Repeated(string key) => new(ExitCode.RefusedOverwrite,
        $"{key} already exists in {store.Description}; backup ids never repeat, so another writer is using this store oddly");
}
