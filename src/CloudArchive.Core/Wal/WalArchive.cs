using System.Buffers;
using CloudArchive.Native;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>What wal-push did.</summary>
/// <param name="Name">The WAL file.</param>
/// <param name="Key">Its object's key.</param>
/// <param name="Size">Bytes of the file.</param>
/// <param name="StoredSize">Bytes stored (compressed).</param>
/// <param name="AlreadyArchived">The same content was already in the store (PostgreSQL retried an archive_command that had succeeded).</param>
/// <param name="Elapsed">Wall time of the push.</param>
public sealed record PushResult(WalFileName Name, string Key, long Size, long StoredSize, bool AlreadyArchived, TimeSpan Elapsed);

/// <summary>What wal-fetch did.</summary>
/// <param name="Name">The WAL file PostgreSQL asked for.</param>
/// <param name="Found">Whether the store holds it (absent is normal at the end of the archive).</param>
/// <param name="Size">Bytes written to the destination.</param>
/// <param name="Elapsed">Wall time of the fetch.</param>
public sealed record FetchResult(WalFileName Name, bool Found, long Size, TimeSpan Elapsed);

/// <summary>
/// archive_command and restore_command: pushes WAL files to the store under the never-overwrite rule,
/// fetches them back verified, and lists what the manifest holds.
/// </summary>
/// <param name="zstdWorkers">zstd threads per file: all cores for one archive_command; 1 when many files are pushed at once.</param>
public sealed class WalArchive(IObjectStore store, int compressionLevel, int zstdWorkers = 0)
{
    private readonly int _zstdWorkers = zstdWorkers > 0 ? zstdWorkers : Environment.ProcessorCount;

    /// <summary>The largest .history or .backup file pushed or fetched: real ones are a few hundred bytes.</summary>
    public const long MaxTextFileSize = 16 * 1024 * 1024;

    /// <summary>archive_command: checks the file at <paramref name="path"/> against its name, compresses and stores it, then writes its record.</summary>
    public async Task<PushResult> PushAsync(string path, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var name = WalFileName.Parse(Path.GetFileName(path));
        await using var file = OpenInput(path);
        var metadata = new ObjectMetadata { [ObjectMetadata.Compression] = ZstdPipeline.Compression };
        WalSegmentHeader? header = null;
        if (name.Kind is WalFileKind.Segment or WalFileKind.Partial)
        {
            header = await ReadSegmentHeaderAsync(file, path, name, ct).ConfigureAwait(false);
            metadata[ObjectMetadata.SegmentSize] = header.SegmentSize.ToString(CultureInfo.InvariantCulture);
            metadata[ObjectMetadata.SystemId] = header.SystemIdentifier.ToString(CultureInfo.InvariantCulture);
        }
        else if (file.Length > MaxTextFileSize)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' is {file.Length} bytes: too large for a {name.Kind} file");
        }

        // Compressed in memory (a few MiB for a 16 MiB segment) so the checksum can travel in the same
        // request as the bytes, and a retry can resend them.
        if (SegmentCodec.Available && file.Length <= SegmentCodec.MaxContent)
        {
            var length = (int)file.Length;
            using var output = new NativeBuffer(SegmentCodec.Bound(length));
            var (digest, compressedLength) = CompressInMemory(file, path, output);
            using var compressed = output.OpenRead(compressedLength);
            return await StoreAsync(path, name, header, metadata, digest, compressed, clock, ct).ConfigureAwait(false);
        }
        // The buffer (zstd's worst case) is pooled: the async worker pushes segment after segment, and only the
        // pages written to become resident.
        var bound = (int)Math.Min(file.Length + (file.Length >> 7) + (64 << 10), Array.MaxLength);
        var buffer = ArrayPool<byte>.Shared.Rent(bound);
        try
        {
            var (digest, compressedLength) = await CompressStreamingAsync(file, path, buffer, bound, ct).ConfigureAwait(false);
            using var compressed = new MemoryStream(buffer, 0, compressedLength, writable: false);
            return await StoreAsync(path, name, header, metadata, digest, compressed, clock, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// A segment read whole into a native buffer, hashed on one thread while zstd compresses its frames on the others.
    /// Read, not mapped: a mapped file that someone truncates meanwhile kills the process with SIGBUS (an async worker
    /// with every push in flight); a read file that changes is a one-line error (exit 6). The copy's cost is measured in
    /// bench/RESULTS.md.
    /// </summary>
    private (ContentDigest, int) CompressInMemory(FileStream file, string path, NativeBuffer output)
    {
        var length = (int)file.Length;
        using var input = new NativeBuffer(length + 1);
        var span = input.GetSpan();
        var read = 0;
        int n;
        while (read < span.Length && (n = RandomAccess.Read(file.SafeFileHandle, span[read..], read)) > 0)
            read += n;
        if (read > length) throw Grew(path, length);
        if (read < length) throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' changed while it was read (it shrank to {read} bytes)");
        return SegmentCodec.Compress(input, read, output, compressionLevel, _zstdWorkers);
    }

    /// <summary>Files too large for one block (segments above 64 MiB) and machines without libzstd: streamed.</summary>
    private async Task<(ContentDigest, int)> CompressStreamingAsync(FileStream file, string path, byte[] buffer, int bound, CancellationToken ct)
    {
        try
        {
            using var compressed = new MemoryStream(buffer, 0, bound, writable: true, publiclyVisible: true);
            compressed.SetLength(0);
            var digest = await ZstdPipeline.CompressAsync(file, compressed, compressionLevel, ct, file.Length, workers: _zstdWorkers).ConfigureAwait(false);
            return (digest, (int)compressed.Length);
        }
        catch (NotSupportedException e)
        {
            // More compressed bytes than zstd's bound for the size read at open: the file grew meanwhile.
            throw Grew(path, file.Length, e);
        }
    }

    private static CloudArchiveException Grew(string path, long length, Exception? inner = null) =>
        new(ExitCode.InvalidInput, $"'{path}' changed while it was read (it grew past {length} bytes)", inner);

    private async Task<PushResult> StoreAsync(string path, WalFileName name, WalSegmentHeader? header, ObjectMetadata metadata, ContentDigest digest,
        Stream compressed, Stopwatch clock, CancellationToken ct)
    {
        if (header is not null && digest.Length != header.SegmentSize)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' changed while it was read ({digest.Length} bytes, expected " +
                $"{header.SegmentSize})");
        metadata[ObjectMetadata.Sha256] = digest.Sha256;
        metadata[ObjectMetadata.Size] = digest.Length.ToString(CultureInfo.InvariantCulture);
        var compressedLength = compressed.Length;
        var key = StoreLayout.WalObjectKey(name);
        var outcome = await store.PutIfAbsentAsync(key, compressed, metadata, ct).ConfigureAwait(false);
        var again = false;
        if (outcome is PutOutcome.AlreadyExists exists)
        {
            var theirs = exists.Existing.Metadata.Get(ObjectMetadata.Sha256);
            if (theirs != digest.Sha256)
                throw new CloudArchiveException(ExitCode.RefusedOverwrite, RefusalMessage(name, store, exists.Existing, metadata));
            again = true;
        }
        else
        {
            // Read back what the store now holds: a store that ignores the write condition shows up here
            // as soon as two writers collide, instead of silently keeping the wrong segment.
            var stored = await store.GetInfoAsync(key, ct).ConfigureAwait(false);
            if (stored?.Metadata.Get(ObjectMetadata.Sha256) != digest.Sha256)
                throw new CloudArchiveException(ExitCode.StoreUnsafe,
                    $"{store.Description} does not honour conditional writes: {name.Name} was written, but the store now holds " +
                        $"{(stored is null ? "nothing" : "different content")} under its name; do not archive to this store");
            // The bytes too, not only the metadata that came with them (a plain object's size is what was sent; an encrypted one's, its envelope's).
            if (stored.Metadata.Get(Crypto.ObjectEnvelope.KeyIdMetadata) is null && stored.Size != compressedLength)
                throw new CloudArchiveException(ExitCode.StoreUnsafe,
                    $"{store.Description} holds {stored.Size} bytes under {key}, but {compressedLength} were written: the store did not keep what it was " +
                        $"sent; {name.Name} is not archived");
        }

        var record = new WalFileRecord
        {
            Name = name.Name,
            Kind = name.Kind.ToString(),
            Timeline = name.Timeline,
            Key = key,
            StartLsn = header is null ? null : name.StartLsn(header.SegmentSize).ToString(),
            EndLsn = header is null ? null : new Lsn(name.StartLsn(header.SegmentSize).Value + header.SegmentSize).ToString(),
            SegmentSize = header?.SegmentSize,
            SystemIdentifier = header?.SystemIdentifier.ToString(CultureInfo.InvariantCulture),
            Size = digest.Length,
            StoredSize = compressedLength,
            Sha256 = digest.Sha256,
            Compression = ZstdPipeline.Compression,
            ArchivedAt = DateTimeOffset.UtcNow,
            PushedBy = Environment.MachineName,
        };
        // The record makes the file visible to listings; "already there" means an earlier push of this same file wrote it.
        using var recordBytes = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.WalFileRecord));
        await store.PutIfAbsentAsync(StoreLayout.WalRecordKey(name), recordBytes, new ObjectMetadata(), ct).ConfigureAwait(false);
        return new PushResult(name, key, digest.Length, compressedLength, again, clock.Elapsed);
    }

    /// <summary>
    /// Restores <paramref name="fileName"/> to <paramref name="destination"/>: a hidden temp file beside it, renamed
    /// into place only once its size, SHA-256 and (for a segment) page header are proven. Nothing the store says is
    /// taken on trust: decoding stops at the recorded size, which may not exceed a segment of this cluster (or
    /// <see cref="MaxTextFileSize"/> for a .history or .backup file), and a segment of another database system is
    /// refused (<paramref name="cluster"/>: the data directory in recovery, when known).
    /// </summary>
    /// <param name="streamed">Serve wal-receive's streamed prefix of a segment not archived whole (restore_command); a prefetch, which
    /// keeps what it fetched for later, takes only whole segments.</param>
    /// <remarks>With two copies of the archive (--fallback-store), a copy that fails these checks is fetched again from the second store.</remarks>
    public Task<FetchResult> FetchAsync(string fileName, string destination, CancellationToken ct, ControlFile? cluster = null, bool streamed = true) =>
        FallbackObjectStore.ReadCheckedAsync(store, StoreLayout.WalObjectKey(WalFileName.Parse(fileName)),
            () => FetchOnceAsync(fileName, destination, ct, cluster, streamed));

    private async Task<FetchResult> FetchOnceAsync(string fileName, string destination, CancellationToken ct, ControlFile? cluster, bool streamed)
    {
        var clock = Stopwatch.StartNew();
        var name = WalFileName.Parse(fileName);
        var destDir = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        if (!Directory.Exists(destDir))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"destination directory {destDir} does not exist");

        var key = StoreLayout.WalObjectKey(name);
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false);
        if (obj is null)
        {
            // "Not in the archive" ends recovery: say it only of a store that is an archive at all. A bucket or prefix
            // that holds neither the store's marker nor a manifest is the wrong one (one request, at the end of recovery).
            await RequireArchiveAsync(ct).ConfigureAwait(false);
            // Nor of a file the manifest lists: its record is written after the object and expire removes the record
            // first, so a record without its object means the object was removed from outside. Recovery must stop there,
            // not end early as if the archive ended (one more request, only when the object is missing).
            if (await store.GetInfoAsync(StoreLayout.WalRecordKey(name), ct).ConfigureAwait(false) is not null)
                throw new CorruptObjectException($"{key} is missing from {store.Description} although the manifest lists it: it was removed from the " +
                    $"store; refusing to answer 'not archived', which would end recovery before the archive does");
            // Nor of a segment that later segments of its timeline follow: a hole is not the end (a segment and its record removed,
            // or a segment dropped by --max-queue-bytes). Only an async push still in flight may fill it: that is waited for.
            if (name.Kind == WalFileKind.Segment && (await LaterSegmentAsync(name, ct).ConfigureAwait(false)
                    ?? await LaterStreamedSegmentAsync(name, ct).ConfigureAwait(false)) is { } later)
            {
                for (var wait = 0; wait < GapWaits; wait++)
                {
                    await Task.Delay(GapWait, ct).ConfigureAwait(false);
                    if (await store.GetInfoAsync(StoreLayout.WalRecordKey(name), ct).ConfigureAwait(false) is not null)
                        return await FetchOnceAsync(fileName, destination, ct, cluster, streamed).ConfigureAwait(false);
                }
                throw new CorruptObjectException($"the archive has a gap: {name.Name} is not in {store.Description}, but {later.Name} of the same timeline " +
                    $"is; refusing to answer 'not archived', which would end recovery at the gap: recover to a target before it, or put the missing " +
                    $"segment back");
            }
            // The end of the archive: what wal-receive stored of the segment in progress, if anything.
            if (streamed && name.Kind == WalFileKind.Segment && await FetchStreamedAsync(name, destination, destDir, cluster, ct).ConfigureAwait(false) is { } reach)
                return new FetchResult(name, true, reach, clock.Elapsed);
            return new FetchResult(name, false, 0, clock.Elapsed);
        }

        var what = $"{key} in {store.Description}";
        var expected = obj.Info.Metadata.Get(ObjectMetadata.Sha256)
            ?? throw new CorruptObjectException($"{what} carries no checksum; refusing to hand it to PostgreSQL");
        var size = ContentBound(name, obj.Info.Metadata, cluster?.SegmentSize, what);
        // Written beside the destination and renamed only once verified: PostgreSQL never sees a partial file.
        var temp = Path.Combine(destDir, $".{Path.GetFileName(destination)}.cloudarchive-tmp");
        try
        {
            ContentDigest digest;
            if (SegmentCodec.Available)
                digest = DecompressTo(obj, temp, what, size);
            else
                await using (var output = CreateTemp(temp, async: true))
                    digest = await ZstdPipeline.DecompressAsync(obj.Content, output, what, size, ct).ConfigureAwait(false);
            // An encrypted object authenticated every byte as it was decrypted: a second pass would prove nothing more.
            if (!(obj.Authenticated && digest.Sha256.Length == 0) && digest.Sha256 != expected)
                throw new CorruptObjectException($"{what} is corrupt: SHA-256 of its content is {digest.Sha256}, recorded {expected}");
            if (digest.Length != size)
                throw new CorruptObjectException($"{what} is corrupt: it decodes to {digest.Length} bytes, recorded {size}");
            if (name.Kind is WalFileKind.Segment or WalFileKind.Partial) CheckSegment(name, temp, size, cluster, what);
            File.Move(temp, destination, overwrite: true);
            return new FetchResult(name, true, digest.Length, clock.Elapsed);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot write {destination}: permission denied", e);
        }
        catch (OutputWriteException e)
        {
            // A full pg_wal is not a fault of the archive: say where, not "internal error".
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot write {destination}: {e.Reason}", e);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>
    /// The streamed prefix of a segment that has no complete object (wal-receive's segment in progress), zero-padded,
    /// checked as a fetched segment is and renamed into place; null when no piece of it is stored.
    /// </summary>
    private async Task<long?> FetchStreamedAsync(WalFileName name, string destination, string destDir, ControlFile? cluster, CancellationToken ct)
    {
        // A server with its own copy of the segment (a standby that streamed it, a recovery that kept what it restored) may
        // have replayed past what the archive holds of it: a shorter copy ending in zeros must never replace it (PostgreSQL
        // stops with "invalid magic number" in WAL it already replayed). Not served; it reads its own copy.
        if (cluster?.DataDirectory is { } dataDir && File.Exists(Path.Combine(dataDir, "pg_wal", name.Name)))
        {
            Log.Info($"{name.Name}: not archived whole yet, and this server has its own copy in pg_wal: not serving the shorter streamed one");
            return null;
        }
        var temp = Path.Combine(destDir, $".{Path.GetFileName(destination)}.cloudarchive-tmp");
        try
        {
            File.Delete(temp);
            var (reach, size) = await new StreamedWal(store).WriteAsync(name, temp, cluster?.SegmentSize, ct).ConfigureAwait(false);
            if (reach == 0) return null;
            CheckSegment(name, temp, size, cluster, $"the streamed pieces of {name.Name} in {store.Description}");
            Log.Info($"{name.Name}: not archived whole yet; serving the {reach} bytes wal-receive stored of it (the end of the archive)");
            File.Move(temp, destination, overwrite: true);
            return reach;
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot write {destination}: permission denied", e);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>How long a missing segment that later ones follow is waited for (an async push of it still in flight).</summary>
    internal static TimeSpan GapWait { get; set; } = TimeSpan.FromSeconds(1);
    private const int GapWaits = 5;

    /// <summary>
    /// A segment of <paramref name="name"/>'s timeline recorded after it; null when there is none. Lists the records of its
    /// log id (256 segments of 16 MiB) and of the following ones, until one holds none: a hole narrower than a whole log id
    /// is found with two requests at the real end of the archive.
    /// </summary>
    private async Task<WalFileName?> LaterSegmentAsync(WalFileName name, CancellationToken ct)
    {
        for (var log = (ulong)name.Log; log <= uint.MaxValue; log++)
        {
            var any = false;
            var prefix = $"{StoreLayout.ManifestWalPrefix}{name.Timeline:X8}/{name.Timeline:X8}{log:X8}";
            await foreach (var item in store.ListAsync(prefix, ct).ConfigureAwait(false))
            {
                any = true;
                if (StoreLayout.WalNameFromRecordKey(item.Key) is { Kind: WalFileKind.Segment } other && other.Timeline == name.Timeline
                    && string.CompareOrdinal(other.Name, name.Name) > 0)
                    return other;
            }
            if (!any && log > name.Log) return null;
        }
        return null;
    }

    /// <summary>A segment of <paramref name="name"/>'s timeline after it that wal-receive holds pieces of; null when there is none.</summary>
    private async Task<WalFileName?> LaterStreamedSegmentAsync(WalFileName name, CancellationToken ct) =>
        (await new StreamedWal(store).ListAsync(name.Timeline, ct).ConfigureAwait(false))
            .Select(s => s.Segment).FirstOrDefault(s => string.CompareOrdinal(s.Name, name.Name) > 0);

    private async Task RequireArchiveAsync(CancellationToken ct)
    {
        if (await store.GetInfoAsync(StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false) is not null) return;
        if (await StoreLayout.HoldsArchiveAsync(store, ct).ConfigureAwait(false)) return;
        throw new StoreUnavailableException(
            $"{store.Description} holds no CloudArchive archive (no {StoreLayout.StoreMarkerKey}, no manifest): is the store URL, bucket or prefix the " +
                $"right one? Refusing to answer 'not archived'", transient: false);
    }

    /// <summary>
    /// The size a WAL object must decode to, from its metadata, checked against what such a file can be: a segment
    /// or .partial is one segment of <paramref name="segmentSize"/> (else of a valid size, at most 1 GiB), a
    /// .history or .backup file at most <see cref="MaxTextFileSize"/>. Anything else is a corrupt object.
    /// </summary>
    public static long ContentBound(WalFileName name, ObjectMetadata metadata, long? segmentSize, string what)
    {
        var text = metadata.Get("size");
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var recorded))
            throw new CorruptObjectException($"{what} is corrupt: its recorded size '{text}' is not a number");
        if (name.Kind is WalFileKind.Segment or WalFileKind.Partial)
        {
            if (segmentSize is { } own && recorded != own)
                throw new CorruptObjectException($"{what} is corrupt or of another cluster: it records {recorded} bytes, but this cluster's WAL segments " +
                    $"are {own} bytes");
            if (!WalFileName.IsValidSegmentSize(recorded))
                throw new CorruptObjectException($"{what} is corrupt: it records {recorded} bytes, which is no WAL segment size");
            return recorded;
        }
        if (recorded > MaxTextFileSize)
            throw new CorruptObjectException($"{what} is corrupt: it records {recorded} bytes, more than a {name.Kind} file may hold ({MaxTextFileSize})");
        return recorded;
    }

    /// <summary>The restored segment's first page must name this segment, its size and (when known) this cluster.</summary>
    private static void CheckSegment(WalFileName name, string temp, long size, ControlFile? cluster, string what)
    {
        var bytes = new byte[WalSegmentHeader.Size];
        using (var f = File.OpenHandle(temp))
            if (RandomAccess.Read(f, bytes, 0) < bytes.Length) bytes = [];
        var header = WalSegmentHeader.TryRead(bytes)
            ?? throw new CorruptObjectException($"{what} is not a WAL segment: no WAL page header at its start");
        if (header.SegmentSize != size || header.PageAddress != name.StartLsn(header.SegmentSize))
            throw new CorruptObjectException($"{what} is not {name.Name}: its first page is at LSN {header.PageAddress} of {header.SegmentSize}-byte segments");
        // A segment's pages belong to its timeline or, before a switch in it, to an earlier one: never to a later one.
        if (header.PageTimeline > name.Timeline)
            throw new CorruptObjectException($"{what} is not {name.Name}: its first page is of timeline {header.PageTimeline}, after the name's {name.Timeline}");
        if (cluster is not null && header.SystemIdentifier != cluster.SystemIdentifier)
            throw new CorruptObjectException(string.Create(CultureInfo.InvariantCulture,
                $"{what} belongs to database system {header.SystemIdentifier}, but the cluster in recovery is {cluster.SystemIdentifier}: is the store " +
                    $"shared with another cluster? Refusing to hand it to PostgreSQL"));
    }

    private static FileStream CreateTemp(string temp, bool async)
    {
        // A stale temp file (a killed wal-fetch) is removed, never written through: a link there is not followed.
        File.Delete(temp);
        return new FileStream(temp, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = async ? 1 << 16 : 0,
            Options = async ? FileOptions.Asynchronous : FileOptions.None, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
    }

    /// <summary>Decoded on a thread of its own while this one hashes and writes, through a few reused 256 KiB chunks.</summary>
    private static ContentDigest DecompressTo(StoredObject obj, string temp, string what, long maxBytes)
    {
        try
        {
            using var output = CreateTemp(temp, async: false);
            return SegmentCodec.Decompress(obj.Content, output.SafeFileHandle, maxBytes, hash: !obj.Authenticated);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new CorruptObjectException($"{what} is corrupt: its zstd stream does not decode within its recorded size ({e.Message})", e);
        }
    }

    /// <summary>A small archived text file (.history, .backup) verified and decoded; null when not archived.</summary>
    public Task<string?> ReadTextFileAsync(WalFileName name, CancellationToken ct) =>
        FallbackObjectStore.ReadCheckedAsync(store, StoreLayout.WalObjectKey(name), () => ReadTextFileOnceAsync(name, ct));

    private async Task<string?> ReadTextFileOnceAsync(WalFileName name, CancellationToken ct)
    {
        var key = StoreLayout.WalObjectKey(name);
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false);
        if (obj is null) return null;
        var what = $"{key} in {store.Description}";
        using var text = new MemoryStream();
        var digest = await ZstdPipeline.DecompressAsync(obj.Content, text, what, ContentBound(name, obj.Info.Metadata, null, what), ct).ConfigureAwait(false);
        if (obj.Info.Metadata.Get(ObjectMetadata.Sha256) != digest.Sha256)
            throw new CorruptObjectException($"{what} is corrupt: SHA-256 mismatch");
        return System.Text.Encoding.UTF8.GetString(text.ToArray());
    }

    /// <summary>The archived WAL, per timeline, from the manifest's record keys.</summary>
    public async Task<WalInventory> ListAsync(CancellationToken ct)
    {
        var names = await ListNamesAsync(ct).ConfigureAwait(false);

        var first = names.FirstOrDefault(n => n.Kind is WalFileKind.Segment or WalFileKind.Partial);
        if (first is null) return WalInventory.Build(names, 16 * 1024 * 1024, null);
        var record = await ReadRecordAsync(first, ct).ConfigureAwait(false);
        return WalInventory.Build(names, record.SegmentSize ?? 16 * 1024 * 1024, record.SystemIdentifier);
    }

    /// <summary>Every WAL file the manifest records.</summary>
    public async Task<List<WalFileName>> ListNamesAsync(CancellationToken ct)
    {
        var names = new List<WalFileName>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestWalPrefix, ct).ConfigureAwait(false))
            if (StoreLayout.WalNameFromRecordKey(item.Key) is { } n) names.Add(n);
        return names;
    }

    /// <summary>The manifest record of <paramref name="name"/> (the one reader of records: bounded, and read from a second copy of the archive when it does not read here).</summary>
    public Task<WalFileRecord> ReadRecordAsync(WalFileName name, CancellationToken ct) =>
        ManifestRecords.ReadAsync(store, StoreLayout.WalRecordKey(name), ManifestJson.Default.WalFileRecord, "WAL file", name.Name, ct);

    private static FileStream OpenInput(string path)
    {
        try
        {
            if (Directory.Exists(path)) throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' is a directory, not a WAL file");
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot read '{path}': no such file", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot read '{path}': permission denied", e);
        }
        catch (IOException e)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot read '{path}': {e.Message}", e);
        }
    }

    private static async Task<WalSegmentHeader> ReadSegmentHeaderAsync(FileStream file, string path, WalFileName name, CancellationToken ct)
    {
        var bytes = new byte[WalSegmentHeader.Size];
        var read = await file.ReadAtLeastAsync(bytes, bytes.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        file.Position = 0;
        var header = WalSegmentHeader.TryRead(bytes.AsSpan(0, read))
            ?? throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' is not a WAL segment: no WAL page header at its start");
        if (file.Length != header.SegmentSize)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' is {file.Length} bytes but its header says segments are " +
                $"{header.SegmentSize} bytes");
        if (name.Seg >= WalFileName.SegmentsPerXLogId(header.SegmentSize))
            throw new CloudArchiveException(ExitCode.InvalidInput,
                $"'{path}': {name.Name} is not a segment name for {header.SegmentSize / 1048576} MiB segments (its last 8 digits must stay below " +
                    $"{WalFileName.SegmentsPerXLogId(header.SegmentSize):X8})");
        var expected = name.StartLsn(header.SegmentSize);
        if (header.PageAddress != expected)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' starts at LSN {header.PageAddress}, but its name says {expected}");
        if (header.PageTimeline > name.Timeline)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"'{path}' starts with a page of timeline {header.PageTimeline}, after its name's " +
                $"{name.Timeline}");
        return header;
    }

    private static string RefusalMessage(WalFileName name, IObjectStore store, ObjectInfo existing, ObjectMetadata ours)
    {
        var theirSystem = existing.Metadata.Get(ObjectMetadata.SystemId);
        var ourSystem = ours.Get(ObjectMetadata.SystemId);
        var why = theirSystem is not null && ourSystem is not null && theirSystem != ourSystem
            ? $"the archived one belongs to database system {theirSystem}, this one to {ourSystem}: another cluster archives to this store, or " +
                "this one was made by pg_upgrade or initdb; after an upgrade run cloudarchive store-upgrade --pgdata DATADIR once, then take a " +
                "backup (docs/versions.md, Major upgrades)"
            : "refusing to overwrite it (an archived file is never replaced)";
        return $"{name.Name} is already archived in {store.Description} with different content; {why}";
    }
}
