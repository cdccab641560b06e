using System.Text.Json;
using CloudArchive.Native;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Dump;

/// <summary>What the manifest knows about SQL dumps, and their content read back verified.</summary>
public sealed class DumpCatalog(IObjectStore store)
{
    /// <summary>The dump id that names the newest dump.</summary>
    public const string Latest = "latest";

    /// <summary>Every recorded dump, oldest first (by start time: the moment its snapshot was taken).</summary>
    public async Task<List<DumpRecord>> ListAsync(CancellationToken ct)
    {
        var result = new List<DumpRecord>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestDumpPrefix, ct).ConfigureAwait(false))
            if (StoreLayout.DumpIdFromRecordKey(item.Key) is { } id)
                result.Add(await ReadAsync(id, ct).ConfigureAwait(false));
        return result.OrderBy(d => d.StartTime).ThenBy(d => d.Id, StringComparer.Ordinal).ToList();
    }

    /// <summary>The record of dump <paramref name="id"/>.</summary>
    public async Task<DumpRecord> ReadAsync(string id, CancellationToken ct)
    {
        if (id.Length == 0 || id.Length > 64 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new CloudArchiveException(ExitCode.Usage, $"'{id}' is not a dump id (see dump-list) or latest");
        var key = StoreLayout.DumpRecordKey(id);
        var record = await ManifestRecords.ReadAsync(store, key, ManifestJson.Default.DumpRecord, "dump", id, ct, " (see dump-list)")
            .ConfigureAwait(false);
        // A record names the object restore reads: only this dump's own.
        if (record.Id != id || record.Key != StoreLayout.DumpObjectKey(id) || record.Size < 0)
            throw new CorruptObjectException($"dump record {key} in {store.Description} is corrupt or forged: it names another dump's id or object");
        return record;
    }

    /// <summary>
    /// An id, or <see cref="Latest"/>: the newest dump of <paramref name="database"/> when given, the newest
    /// globals dump with <paramref name="globals"/>, else the newest database dump of any database.
    /// </summary>
    public async Task<DumpRecord> ResolveAsync(string idOrLatest, string? database, bool globals, CancellationToken ct)
    {
        if (!string.Equals(idOrLatest, Latest, StringComparison.OrdinalIgnoreCase))
            return await ReadAsync(idOrLatest, ct).ConfigureAwait(false);
        // A record from the future (planted, or a clock gone wrong) is never the newest.
        var all = (await ListAsync(ct).ConfigureAwait(false)).Where(d => ManifestRecords.TimeProblem(d.StartTime, d.EndTime, DateTimeOffset.UtcNow) is null);
        var match = all.LastOrDefault(d => globals
            ? d.Kind == DumpKind.Globals
            : d.Kind == DumpKind.Database && (database is null || d.Database == database));
        return match ?? throw new CloudArchiveException(ExitCode.NotFound, globals
            ? $"no globals dump in {store.Description}"
            : database is null ? $"no database dump in {store.Description}" : $"no dump of database {database} in {store.Description}");
    }

    /// <summary>
    /// Decompresses the dump into <paramref name="output"/> in one pass and checks its length and SHA-256
    /// against the record. The bytes are written before the check can be made: callers that must not act on
    /// a corrupt dump verify first (<see cref="VerifyAsync"/>) or write to a temp file. <paramref name="progress"/> counts the
    /// decoded bytes (of <see cref="DumpRecord.Size"/>).
    /// </summary>
    public async Task<ContentDigest> CopyVerifiedAsync(DumpRecord record, Stream output, CancellationToken ct, IProgress<long>? progress = null)
    {
        await using var obj = await store.OpenReadAsync(record.Key, ct).ConfigureAwait(false)
            ?? throw new CorruptObjectException($"dump {record.Id} is in the manifest but {record.Key} is missing from {store.Description}");
        var digest = await ZstdPipeline.DecompressAsync(obj.Content, output, $"dump {record.Id} ({record.Key})", record.Size, ct, progress)
            .ConfigureAwait(false);
        if (digest.Length != record.Size || !string.Equals(digest.Sha256, record.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new CorruptObjectException($"dump {record.Id} ({record.Key} in {store.Description}) is corrupt: its content does not match the SHA-256 " +
                $"and size recorded when it was taken");
        return digest;
    }

    /// <summary>Reads the whole dump and checks it, keeping nothing: the proof that a restore may start.</summary>
    /// <remarks>With two copies of the archive (--fallback-store), a dump that fails the check here is read from the second store from then on.</remarks>
    public Task<ContentDigest> VerifyAsync(DumpRecord record, CancellationToken ct, IProgress<long>? progress = null) =>
        FallbackObjectStore.ReadCheckedAsync(store, record.Key, () => CopyVerifiedAsync(record, Stream.Null, ct, progress));

    /// <summary>
    /// Writes the dump to <paramref name="path"/>: a hidden temp file beside it (mode 0600, a dump holds every
    /// row) is renamed into place only once the checksum matches, so a corrupt dump never appears there.
    /// </summary>
    public async Task<ContentDigest> FetchToFileAsync(DumpRecord record, string path, CancellationToken ct)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new CloudArchiveException(ExitCode.InvalidInput, $"directory {dir} does not exist");
        if (File.Exists(full) || Directory.Exists(full)) throw new CloudArchiveException(ExitCode.InvalidInput, $"{full} already exists; remove it or " +
            $"choose another --output");
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.cloudarchive-tmp-{Guid.NewGuid():N}");
        try
        {
            ContentDigest digest;
            await using (var file = CreatePrivateFile(temp))
            {
                digest = await CopyVerifiedAsync(record, file, ct).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: false);
            return digest;
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static FileStream CreatePrivateFile(string path)
    {
        try
        {
            return new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 1 << 16,
                Options = FileOptions.Asynchronous, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot write {Path.GetDirectoryName(path)}: {e.Message}", e);
        }
    }
}
