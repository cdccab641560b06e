using System.Formats.Tar;
using System.Security.Cryptography;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;
using ZstdSharp;

namespace CloudArchive.Core.Operations;

/// <summary>What verify checked.</summary>
/// <param name="Objects">Objects downloaded and checked.</param>
/// <param name="Bytes">Bytes downloaded.</param>
/// <param name="Problems">Every mismatch or gap found, one line each; empty when all is well.</param>
public sealed record VerifyReport(long Objects, long Bytes, IReadOnlyList<string> Problems)
{
    /// <summary>Objects read per archive key id; "none" counts those written without encryption.</summary>
    public IReadOnlyDictionary<string, long> Keys { get; init; } = new Dictionary<string, long>();

    /// <summary>The lock horizon of the objects read (--lock-days): the earliest and latest retain-until, or none.</summary>
    public LockHorizon Locks { get; init; } = new();
}

/// <summary>
/// verify: downloads objects and checks them against the manifest: every file of a backup (SHA-256, or each block against
/// its block map), the chain of backups each incremental builds on,
/// every WAL file (SHA-256 of its content), and the continuity of WAL from each backup's start onwards.
/// </summary>
public sealed class ArchiveVerifier(IObjectStore store, int jobs, Action<long, long>? progress = null)
{
    // Every object read adds its lock to the horizon verify shows.
    private readonly LockWatchingStore store = new(store, new LockHorizon());

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _keys = new(StringComparer.Ordinal);
    private long _objects;
    private long _bytes;

    /// <summary>verify with a second store (--store-2): each store checked in turn, each with its own report.</summary>
    public static async Task<IReadOnlyList<(string Store, VerifyReport Report)>> VerifyEachAsync(IReadOnlyList<IObjectStore> stores, int jobs,
        Action<long, long>? progress, string? backupId, bool wal, bool dumps, CancellationToken ct)
    {
        var reports = new List<(string, VerifyReport)>();
        foreach (var store in stores)
            reports.Add((store.Description, await new ArchiveVerifier(store, jobs, progress).VerifyAsync(backupId, wal, dumps, ct).ConfigureAwait(false)));
        return reports;
    }

    /// <summary>Verifies one backup (or all when <paramref name="backupId"/> is null), and with <paramref name="wal"/>
    /// and <paramref name="dumps"/> the WAL and the dumps.</summary>
    public async Task<VerifyReport> VerifyAsync(string? backupId, bool wal, bool dumps, CancellationToken ct)
    {
        var problems = new System.Collections.Concurrent.ConcurrentBag<string>();
        var catalog = new BackupCatalog(store);
        var backups = await catalog.ListBackupsAsync(ct).ConfigureAwait(false);
        var all = backups;
        // "latest", as restore and plan take it: the newest backup whose record fits (none from the future).
        if (backupId == "latest")
            backups = [backups.LastOrDefault(b => Manifest.ManifestRecords.TimeProblem(b.StartTime, b.StopTime, DateTimeOffset.UtcNow) is null)
                ?? throw new CloudArchiveException(ExitCode.NotFound, $"no backup in {store.Description}")];
        else if (backupId is not null)
            backups = [backups.FirstOrDefault(b => b.Id == backupId) ?? throw new CloudArchiveException(ExitCode.NotFound, $"no backup {backupId} in " +
                $"{store.Description}")];

        foreach (var b in backups)
        {
            await VerifyBackupAsync(b, all, problems, ct).ConfigureAwait(false);
            try
            {
                await catalog.PlanAsync(new RecoveryTarget(TargetKind.Immediate, null, "current"), b.Id, ct).ConfigureAwait(false);
            }
            catch (CloudArchiveException e) when (e.ExitCode == ExitCode.NoRecoveryPath)
            {
                problems.Add($"backup {b.Id}: {e.Message}");
            }
        }
        if (wal) await VerifyWalAsync(problems, ct).ConfigureAwait(false);
        if (dumps)
        {
            var catalog2 = new Dump.DumpCatalog(store);
            foreach (var d in await catalog2.ListAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    var digest = await catalog2.VerifyAsync(d, ct).ConfigureAwait(false);
                    Interlocked.Add(ref _bytes, digest.Length);
                }
                catch (CloudArchiveException e) when (e.ExitCode is ExitCode.Corrupt or ExitCode.NotFound)
                {
                    problems.Add($"dump {d.Id} ({d.Database ?? "globals"}): {e.Message}");
                }
                Report();
            }
        }
        return new VerifyReport(_objects, _bytes, problems.Order(StringComparer.Ordinal).ToList())
        {
            Keys = new SortedDictionary<string, long>(_keys, StringComparer.Ordinal),
            Locks = store.Horizon,
        };
    }

    /// <summary>
    /// Every bundle of the backup read and checked as a restore checks it (each stored file's SHA-256, each stored block
    /// against its block map, each map against the record), written nowhere; and its chain resolved, so a missing or
    /// unfit link is named.
    /// </summary>
    private async Task VerifyBackupAsync(BackupRecord backup, IReadOnlyList<BackupRecord> all, System.Collections.Concurrent.ConcurrentBag<string> problems,
        CancellationToken ct)
    {
        try
        {
            BackupChain.Resolve(backup, all).Plan();
        }
        catch (CloudArchiveException e) when (e.ExitCode is ExitCode.NoRecoveryPath or ExitCode.Corrupt)
        {
            problems.Add(e.Message.StartsWith($"backup {backup.Id}", StringComparison.Ordinal) ? e.Message : $"backup {backup.Id}: {e.Message}");
        }
        var tasks = BundleTasks(backup);
        // Every block map, whether or not a block of this backup needs it: the next incremental compares with all of them.
        var maps = new BackupMaps(store, backup);
        foreach (var entry in backup.Entries.Where(e => e.Blocks && e.Sha256 is not null))
        {
            try
            {
                await maps.SliceAsync(entry, ct).ConfigureAwait(false);
            }
            catch (CorruptObjectException e)
            {
                problems.Add(e.Message);
                break;
            }
        }
        var extractor = new BundleExtractor(store);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, jobs), CancellationToken = ct };
        await Parallel.ForEachAsync(tasks, parallel, async (task, token) =>
        {
            try
            {
                Interlocked.Add(ref _bytes, await extractor.ExtractAsync(task, DiscardingSink.Instance, null, token, CountKey).ConfigureAwait(false));
            }
            catch (CorruptObjectException e)
            {
                problems.Add($"backup {backup.Id}: {e.Message}");
            }
            Report();
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// What reading each bundle of <paramref name="backup"/> checks, bundle by bundle: its stored files and blocks as its record
    /// lists them (a bundle with nothing stored, an incremental's, is still read: what it holds must be what its record lists).
    /// </summary>
    public static List<ChainTask> BundleTasks(BackupRecord backup)
    {
        var blockSize = backup.BlockSize ?? BlockMap.DefaultBlockSize;
        return backup.Entries.Where(e => e.Sha256 is not null && e.Stored != "").GroupBy(e => e.Bundle)
            .Select(g => new ChainTask(backup, g.Key, g.GroupBy(e => e.Path, StringComparer.Ordinal).ToDictionary(p => p.Key, p =>
            {
                var e = p.First();
                var take = !e.Blocks ? null : e.Stored is null ? BlockRanges.All(BlockMap.BlockCount(e.Size, blockSize))
                    : BlockRanges.TryParse(e.Stored, BlockMap.BlockCount(e.Size, blockSize)) ?? BlockRanges.Empty;
                return new ChainPiece(e, e, take);
            }, StringComparer.Ordinal)))
            .Concat(Enumerable.Range(0, backup.Bundles.Count).Where(i => !backup.Entries.Any(e => e.Bundle == i && e.Sha256 is not null && e.Stored != ""))
                .Select(i => new ChainTask(backup, i, new Dictionary<string, ChainPiece>())))
            .ToList();
    }

    /// <summary>
    /// One archived WAL file read and checked as verify and wal-fetch check it (its recorded size bounds the decoding, the
    /// SHA-256 of its content); the bytes of content it holds. A missing or corrupt object is a <see cref="CorruptObjectException"/>.
    /// </summary>
    public static async Task<long> CheckWalObjectAsync(IObjectStore store, WalFileName name, CancellationToken ct, Action<ObjectInfo>? seen = null)
    {
        var key = StoreLayout.WalObjectKey(name);
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false)
            ?? throw new CorruptObjectException($"{key} is missing");
        seen?.Invoke(obj.Info);
        var digest = await ZstdPipeline.DecompressAsync(obj.Content, Stream.Null, key,
            WalArchive.ContentBound(name, obj.Info.Metadata, null, key), ct).ConfigureAwait(false);
        if (!(obj.Authenticated && digest.Sha256.Length == 0) && digest.Sha256 != obj.Info.Metadata.Get(ObjectMetadata.Sha256))
            throw new CorruptObjectException($"{key} is corrupt (SHA-256 mismatch)");
        return digest.Length;
    }

    private async Task VerifyWalAsync(System.Collections.Concurrent.ConcurrentBag<string> problems, CancellationToken ct)
    {
        var names = new List<WalFileName>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestWalPrefix, ct).ConfigureAwait(false))
            if (StoreLayout.WalNameFromRecordKey(item.Key) is { } n) names.Add(n);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(2, jobs * 2), CancellationToken = ct };
        await Parallel.ForEachAsync(names, parallel, async (name, token) =>
        {
            try
            {
                Interlocked.Add(ref _bytes, await CheckWalObjectAsync(store, name, token, CountKey).ConfigureAwait(false));
            }
            catch (CorruptObjectException e)
            {
                problems.Add($"WAL {name}: {e.Message}");
            }
            Report();
        }).ConfigureAwait(false);
        var inventory = WalInventory.Build(names, 16 * 1024 * 1024, null);
        if (names.FirstOrDefault(n => n.Kind == WalFileKind.Segment) is { } first)
            inventory = WalInventory.Build(names,
                (await new WalArchive(store, 0).ReadRecordAsync(first, ct).ConfigureAwait(false)).SegmentSize
                ?? 16 * 1024 * 1024, null);
        foreach (var t in inventory.Timelines)
            foreach (var g in t.Gaps)
                problems.Add($"WAL gap on timeline {t.Timeline}: {g.First} - {g.Last} missing ({g.Segments} segments)");
    }

    private static async Task<string> HashAsync(Stream? data, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        if (data is not null)
        {
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 17);
            try
            {
                int n;
                while ((n = await data.ReadAsync(buffer.AsMemory(0, 1 << 17), ct).ConfigureAwait(false)) > 0) sha.AppendData(buffer, 0, n);
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Which archive key an object is encrypted with ("none": written without encryption).</summary>
    private void CountKey(ObjectInfo info) =>
        _keys.AddOrUpdate(info.Metadata.Get(Crypto.ObjectEnvelope.KeyIdMetadata) ?? "none", 1, (_, n) => n + 1);

    private void Report()
    {
        // Counted whether or not anyone watches: `progress?.Invoke(Increment(...))` skipped the count without a terminal.
        var objects = Interlocked.Increment(ref _objects);
        progress?.Invoke(objects, Interlocked.Read(ref _bytes));
    }
}
