using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Crypto;
using CloudArchive.Core.Dump;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Operations;

/// <summary>
/// copy: brings one store up to date with another (a second copy of the archive elsewhere). Every object of the
/// archive is copied as it is stored (an encrypted one as its ciphertext, so no key is needed), data objects before
/// the records that list them, so that what the second store's manifest lists is complete there, as in the first.
/// Each object is downloaded once into a private staging file, checked there as its readers check it (a WAL file
/// against its size and SHA-256, a bundle against its backup record, a dump against its record, a record by being
/// read; an encrypted one only when its key is given), written by conditional put with the same metadata, and read
/// back (size and SHA-256 of the stored bytes). An object the second store already holds is compared, never replaced.
/// </summary>
/// <param name="from">The source store's backend (no encryption layer: objects are copied byte for byte).</param>
/// <param name="to">The destination store's backend.</param>
/// <param name="keys">Keys to check encrypted objects with (none: they are copied after an envelope check only).</param>
/// <param name="progress">Bytes downloaded, as they come.</param>
public sealed class ArchiveCopier(IObjectStore from, IObjectStore to, KeyRing keys, int jobs, IProgress<long>? progress = null)
{
    /// <summary>Objects this small that B already holds are compared byte for byte (records); larger ones by size and metadata.</summary>
    private const long CompareBytesBelow = ManifestRecords.MaxSmallRecord;

    /// <summary>The prefixes that hold the archive (leases and store-check probes are no part of it; the marker is each store's own).</summary>
    internal static readonly string[] ArchivePrefixes =
        [StoreLayout.ManifestPrefix, StoreLayout.WalPrefix, StoreLayout.WalStreamPrefix, StoreLayout.BackupPrefix, StoreLayout.DumpPrefix, StoreLayout.ClusterPrefix];

    private readonly StagedObjectStore _staged = new(from);
    private EncryptedObjectStore? _checked;
    private readonly ConcurrentDictionary<string, Lazy<Task<BackupRecord>>> _backups = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<string> _conflicts = [];
    private readonly ConcurrentBag<string> _corrupt = [];
    private long _copied, _bytes, _skipped, _unchecked;

    /// <summary>How many bytes the run will download at most (known once the stores are listed): a progress display's total.</summary>
    public Action<long>? OnTotal { get; init; }

    /// <summary>Copies what the destination lacks; conflicts and corrupt objects are reported, the rest goes on.</summary>
    public async Task<CopyReport> CopyAsync(CancellationToken ct)
    {
        await MarkAsync(ct).ConfigureAwait(false);
        var source = await ListAsync(from, ct).ConfigureAwait(false);
        var present = await ListAsync(to, ct).ConfigureAwait(false);
        var data = new List<(ListedObject Item, string Record)>();
        var records = new List<ListedObject>();
        var histories = new List<ListedObject>();
        long notRecorded = 0;
        foreach (var item in source.Values)
        {
            var (history, key) = StoreLayout.SplitHistory(item.Key);
            if (history.Length == 0 && key.StartsWith(StoreLayout.ManifestClusterPrefix, StringComparison.Ordinal)) histories.Add(item);
            else if (IsRecord(key)) records.Add(item);
            else if (StoreLayout.RecordOf(key) is { } record && source.ContainsKey(history + record)) data.Add((item, history + record));
            // wal-receive's pieces of a segment in progress: no record lists them, each carries its own checksum and range.
            else if (StoreLayout.StreamedPieceFromKey(key) is not null) data.Add((item, item.Key));
            else if (!key.StartsWith(StoreLayout.LeasePrefix, StringComparison.Ordinal) && !key.StartsWith(StoreLayout.ProbePrefix, StringComparison.Ordinal))
                notRecorded++;
        }
        OnTotal?.Invoke(source.Values.Where(o => !present.ContainsKey(o.Key)).Sum(o => o.Size));

        using var staging = new StagingDirectory();
        var failedUnits = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        // Data first, then the records that list it (only when all of it is there), the cluster histories last: B's manifest never lists what B lacks.
        await ForEachAsync(data, async (d, token) =>
        {
            if (!await CopyOneAsync(d.Item, present.ContainsKey(d.Item.Key), staging, token).ConfigureAwait(false)) failedUnits[d.Record] = true;
        }, ct).ConfigureAwait(false);
        await ForEachAsync(records.Where(r => !failedUnits.ContainsKey(r.Key)), async (r, token) =>
            await CopyOneAsync(r, present.ContainsKey(r.Key), staging, token).ConfigureAwait(false), ct).ConfigureAwait(false);
        await ForEachAsync(histories, async (r, token) =>
            await CopyOneAsync(r, present.ContainsKey(r.Key), staging, token).ConfigureAwait(false), ct).ConfigureAwait(false);
        return new CopyReport(from.Description, to.Description, _copied, _bytes, _skipped, [.. _conflicts.Order(StringComparer.Ordinal)],
            [.. _corrupt.Order(StringComparer.Ordinal)], _unchecked, notRecorded);
    }

    /// <summary>
    /// A second store's backlog caught up: only <paramref name="keys"/> (and the WAL object a WAL record in them lists), each
    /// staged, checked, written and read back as <see cref="CopyAsync"/> does, data before records, a record only once its data
    /// is in B. Returns the report and the keys settled: in B as in A now, or no longer in A (expired, or never written there).
    /// </summary>
    /// <param name="withData">Whether a WAL record brings the WAL object it lists; false: the caller has seen to the data (a mirrored write).</param>
    public async Task<(CopyReport Report, IReadOnlyList<string> Settled)> CopyKeysAsync(IEnumerable<string> keys, CancellationToken ct, bool withData = true)
    {
        await MarkAsync(ct).ConfigureAwait(false);
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var full in keys)
        {
            wanted.Add(full);
            var (history, key) = StoreLayout.SplitHistory(full);
            if (withData && StoreLayout.WalNameFromRecordKey(key) is { } wal) wanted.Add(history + StoreLayout.WalObjectKey(wal));
        }
        var settled = new ConcurrentBag<string>();
        var failedUnits = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        using var staging = new StagingDirectory();
        async ValueTask One(string key, CancellationToken token)
        {
            if (await from.GetInfoAsync(key, token).ConfigureAwait(false) is not { } info)
            {
                settled.Add(key);
                return;
            }
            var inB = await to.GetInfoAsync(key, token).ConfigureAwait(false) is not null;
            if (await CopyOneAsync(new ListedObject(key, info.Size), inB, staging, token).ConfigureAwait(false)) settled.Add(key);
            else if (RecordKeyOf(key) is { } record) failedUnits[record] = true;
        }
        var split = wanted.Select(k => (Key: k, Parts: StoreLayout.SplitHistory(k))).ToList();
        bool IsHistory((string Key, (string History, string Key) Parts) k) =>
            k.Parts.History.Length == 0 && k.Parts.Key.StartsWith(StoreLayout.ManifestClusterPrefix, StringComparison.Ordinal);
        await ForEachAsync(split.Where(k => !IsHistory(k) && !IsRecord(k.Parts.Key)).Select(k => k.Key), One, ct).ConfigureAwait(false);
        await ForEachAsync(split.Where(k => !IsHistory(k) && IsRecord(k.Parts.Key) && !failedUnits.ContainsKey(k.Key)).Select(k => k.Key), One, ct)
            .ConfigureAwait(false);
        await ForEachAsync(split.Where(IsHistory).Select(k => k.Key), One, ct).ConfigureAwait(false);
        var report = new CopyReport(from.Description, to.Description, _copied, _bytes, _skipped, [.. _conflicts.Order(StringComparer.Ordinal)],
            [.. _corrupt.Order(StringComparer.Ordinal)], _unchecked, 0);
        return (report, [.. settled.Order(StringComparer.Ordinal)]);
    }

    /// <summary>The record that lists a data object, with its history's prefix; null for a record itself.</summary>
    private static string? RecordKeyOf(string fullKey)
    {
        var (history, key) = StoreLayout.SplitHistory(fullKey);
        return StoreLayout.RecordOf(key) is { } record ? history + record : null;
    }

    /// <summary>B must be the same archive as A (<see cref="StoreSetup.MarkAsCopyOfAsync"/>): refused before anything is written.</summary>
    private Task MarkAsync(CancellationToken ct) => StoreSetup.MarkAsCopyOfAsync(from, to, ct);

    /// <summary>Every object of the archive in <paramref name="store"/> (its prefixes), by key.</summary>
    internal static async Task<Dictionary<string, ListedObject>> ListAsync(IObjectStore store, CancellationToken ct)
    {
        var result = new Dictionary<string, ListedObject>(StringComparer.Ordinal);
        foreach (var prefix in ArchivePrefixes)
            await foreach (var item in store.ListAsync(prefix, ct).ConfigureAwait(false))
                result[item.Key] = item;
        return result;
    }

    private static bool IsRecord(string key) =>
        StoreLayout.WalNameFromRecordKey(key) is not null || StoreLayout.BackupIdFromRecordKey(key) is not null
        || StoreLayout.DumpIdFromRecordKey(key) is not null || StoreLayout.DrillIdFromRecordKey(key) is not null;

    private Task ForEachAsync<T>(IEnumerable<T> items, Func<T, CancellationToken, ValueTask> body, CancellationToken ct) =>
        Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, jobs), CancellationToken = ct }, body);

    /// <summary>One object: compared when B has it, else staged, checked, written and read back. False when it is not in B as in A.</summary>
    private async Task<bool> CopyOneAsync(ListedObject item, bool inB, StagingDirectory staging, CancellationToken ct)
    {
        var key = item.Key;
        if (inB) return await CompareAsync(key, null, ct).ConfigureAwait(false);
        var path = staging.NewFile();
        try
        {
            ObjectInfo info;
            string sha;
            long length;
            await using (var obj = await from.OpenReadAsync(key, ct).ConfigureAwait(false))
            {
                if (obj is null) return false; // removed since the listing (expire): nothing to copy
                info = obj.Info;
                (length, sha) = await StageAsync(obj.Content, path, ct).ConfigureAwait(false);
            }
            _staged.Stage(info with { Size = length }, path);
            try
            {
                await CheckAsync(key, info, path, ct).ConfigureAwait(false);
            }
            catch (CloudArchiveException e) when (e.ExitCode != ExitCode.StoreUnavailable)
            {
                _corrupt.Add($"{key} in {from.Description}: {e.Message.ReplaceLineEndings(" ")}; not copied");
                return false;
            }
            finally
            {
                _staged.Unstage(key);
            }
            PutOutcome outcome;
            await using (var file = OpenStaged(path))
                outcome = await to.PutIfAbsentAsync(key, file, new ObjectMetadata(info.Metadata), ct).ConfigureAwait(false);
            if (outcome is PutOutcome.AlreadyExists) return await CompareAsync(key, info with { Size = length }, ct).ConfigureAwait(false);
            await using (var back = await to.OpenReadAsync(key, ct).ConfigureAwait(false))
            {
                var (backLength, backSha) = back is null ? (-1, "") : await HashAsync(back.Content, ct).ConfigureAwait(false);
                if (backLength != length || backSha != sha)
                {
                    _corrupt.Add($"{key} in {to.Description}: read back {backLength} bytes with SHA-256 {backSha}, written {length} with {sha}: the store " +
                        "did not keep what it was sent");
                    return false;
                }
            }
            Interlocked.Increment(ref _copied);
            Interlocked.Add(ref _bytes, length);
            return true;
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// An object B already holds: the same when size and metadata match (the metadata of a WAL file holds its SHA-256, an
    /// encrypted object's a MAC of it) and, for one as small as a record, every byte. Anything else is a conflict, left as it is.
    /// </summary>
    private async Task<bool> CompareAsync(string key, ObjectInfo? ours, CancellationToken ct)
    {
        ours ??= await from.GetInfoAsync(key, ct).ConfigureAwait(false);
        var theirs = await to.GetInfoAsync(key, ct).ConfigureAwait(false);
        if (ours is null) return false;
        var same = theirs is not null && theirs.Size == ours.Size && theirs.Metadata.Count == ours.Metadata.Count
            && ours.Metadata.All(m => theirs.Metadata.Get(m.Key) == m.Value)
            && (ours.Size >= CompareBytesBelow || await SameBytesAsync(key, ct).ConfigureAwait(false));
        if (same)
        {
            Interlocked.Increment(ref _skipped);
            return true;
        }
        _conflicts.Add($"{key} in {to.Description} holds other content than in {from.Description} ({theirs?.Size} bytes, not {ours.Size}" +
            $"{(theirs?.Size == ours.Size ? ", or other metadata or bytes" : "")}): left as it is");
        return false;
    }

    private async Task<bool> SameBytesAsync(string key, CancellationToken ct)
    {
        await using var a = await from.OpenReadAsync(key, ct).ConfigureAwait(false);
        await using var b = await to.OpenReadAsync(key, ct).ConfigureAwait(false);
        if (a is null || b is null) return false;
        return await HashAsync(a.Content, ct).ConfigureAwait(false) == await HashAsync(b.Content, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The staged object checked as the command that reads it would check it. An encrypted object whose key is not given
    /// is only checked to be an envelope; everything else is read through the decryption layer and the manifest's readers.
    /// </summary>
    private async Task CheckAsync(string fullKey, ObjectInfo info, string path, CancellationToken ct)
    {
        if (info.Metadata.Get(ObjectEnvelope.KeyIdMetadata) is { } keyId && keys.Find(keyId) is null)
        {
            var start = new byte[ObjectEnvelope.MagicLength];
            int n;
            await using (var file = OpenStaged(path)) n = await file.ReadAtLeastAsync(start, start.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            if (!ObjectEnvelope.IsEncrypted(start.AsSpan(0, n)))
                throw new CorruptObjectException($"it names archive key {keyId} but is no encrypted object");
            Interlocked.Increment(ref _unchecked);
            return;
        }
        var (history, key) = StoreLayout.SplitHistory(fullKey);
        // One decryption layer for the run: it reads A's archive id once.
        IObjectStore whole = LazyInitializer.EnsureInitialized(ref _checked, () => new EncryptedObjectStore(_staged, keys));
        var store = history.Length == 0 ? whole : ClusterHistories.Of(whole, new ClusterHistory(
            ulong.Parse(history[StoreLayout.ClusterPrefix.Length..^1], CultureInfo.InvariantCulture), "", DateTimeOffset.MinValue));
        if (StoreLayout.WalNameFromRecordKey(key) is { } walRecord)
            await ManifestRecords.ReadAsync(store, key, ManifestJson.Default.WalFileRecord, "WAL file", walRecord.Name, ct).ConfigureAwait(false);
        else if (StoreLayout.BackupIdFromRecordKey(key) is { } backupId)
            await BackupRecordAsync(store, history, backupId, ct).ConfigureAwait(false);
        else if (StoreLayout.DumpIdFromRecordKey(key) is { } dumpId)
            await new DumpCatalog(store).ReadAsync(dumpId, ct).ConfigureAwait(false);
        else if (StoreLayout.DrillIdFromRecordKey(key) is { } drillId)
            await new DrillCatalog(store).ReadAsync(drillId, ct).ConfigureAwait(false);
        else if (StoreLayout.ClusterIdFromRecordKey(key) is not null)
            await ClusterHistories.ListAsync(whole, ct).ConfigureAwait(false);
        else if (StoreLayout.FirstClusterFromStampKey(key) is not null)
        {
            if (info.Size != 0 && info.Metadata.Get(ObjectEnvelope.KeyIdMetadata) is null)
                throw new CorruptObjectException("a first-cluster stamp is an empty object");
        }
        else if (StoreLayout.StreamedPieceFromKey(key) is { } piece)
            await new Wal.StreamedWal(store).ReadPieceAsync(new Wal.StreamedPiece(piece.Segment, piece.Start, piece.End, key), null, Stream.Null, ct)
                .ConfigureAwait(false);
        else if (StoreLayout.RecordOf(key) is { } record)
        {
            if (StoreLayout.WalNameFromRecordKey(record) is { } wal)
                await ArchiveVerifier.CheckWalObjectAsync(store, wal, ct).ConfigureAwait(false);
            else if (StoreLayout.BackupIdFromRecordKey(record) is { } id)
                await CheckBackupObjectAsync(store, history, id, key, ct).ConfigureAwait(false);
            else if (StoreLayout.DumpIdFromRecordKey(record) is { } dump)
            {
                var catalog = new DumpCatalog(store);
                await catalog.VerifyAsync(await catalog.ReadAsync(dump, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
            }
        }
        else throw new CorruptObjectException("it is no object of the archive's layout");
    }

    /// <summary>A bundle checked file by file against its backup record, or a block map object slice by slice; anything else under the backup is refused.</summary>
    private async Task CheckBackupObjectAsync(IObjectStore store, string history, string id, string key, CancellationToken ct)
    {
        var backup = await BackupRecordAsync(store, history, id, ct).ConfigureAwait(false);
        var bundle = backup.Bundles.FindIndex(b => b.Key == key);
        if (bundle >= 0)
        {
            var task = ArchiveVerifier.BundleTasks(backup).First(t => t.Bundle == bundle);
            await new BundleExtractor(store).ExtractAsync(task, DiscardingSink.Instance, null, ct).ConfigureAwait(false);
            return;
        }
        var mapped = backup.Bundles.FindIndex(b => b.MapKey == key);
        if (mapped < 0) throw new CorruptObjectException($"backup {id}'s record lists no such object");
        var maps = new BackupMaps(store, backup);
        foreach (var entry in backup.Entries.Where(e => e.Bundle == mapped && e.Blocks && e.Sha256 is not null))
            await maps.SliceAsync(entry, ct).ConfigureAwait(false);
    }

    /// <summary>A backup's record, read once a run (a bundle's check and its map's need it; it may be large).</summary>
    private Task<BackupRecord> BackupRecordAsync(IObjectStore store, string history, string id, CancellationToken ct)
    {
        if (!ManifestRecords.IsValidId(id))
            throw new CorruptObjectException($"'{id}' is not a backup id backup-push writes");
        return _backups.GetOrAdd(history + id, _ => new Lazy<Task<BackupRecord>>(() => new BackupCatalog(store).ReadBackupAsync(id, ct))).Value;
    }

    private async Task<(long Length, string Sha256)> StageAsync(Stream content, string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        return await HashAsync(content, ct, file).ConfigureAwait(false);
    }

    private async Task<(long Length, string Sha256)> HashAsync(Stream content, CancellationToken ct, Stream? copy = null)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 17);
        long length = 0;
        try
        {
            int n;
            while ((n = await content.ReadAsync(buffer.AsMemory(0, 1 << 17), ct).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                length += n;
                if (copy is not null)
                {
                    await copy.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    progress?.Report(n);
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return (length, Convert.ToHexStringLower(sha.GetHashAndReset()));
    }

    private static FileStream OpenStaged(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);

    /// <summary>A private directory (mode 0700) for the objects in flight, removed with what is left in it.</summary>
    private sealed class StagingDirectory : IDisposable
    {
        private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("cloudarchive-copy-");

        public string NewFile() => Path.Combine(_dir.FullName, Guid.NewGuid().ToString("N"));

        public void Dispose()
        {
            try
            {
                _dir.Delete(recursive: true);
            }
            catch (IOException)
            {
                // Best effort: the temp directory's own clean-up takes what is left.
            }
        }
    }
}
