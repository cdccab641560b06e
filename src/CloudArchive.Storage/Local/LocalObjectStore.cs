using System.Buffers.Binary;
using CloudArchive.Native;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using CloudArchive.Core;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage.Local;

/// <summary>
/// A directory as an object store, the embedded default. A put writes a hidden temp file in the target
/// directory, fsyncs it, moves it into place with an atomic no-replace rename (or a hard link), and fsyncs
/// the directory. Each file starts with a small header carrying the object's metadata, so object and
/// metadata appear together or not at all.
/// </summary>
public sealed class LocalObjectStore : IObjectStore
{
    private static readonly byte[] Magic = "CAOBJ1\n"u8.ToArray();
    private const string TempPrefix = ".tmp.";
    // Archived WAL holds every row of the database: owner and group only.
    private const UnixFileMode FileMode0640 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
    // The marker holds no data, and every user that archives or restores reads it (store-init may have run as another).
    private const UnixFileMode FileMode0644 = FileMode0640 | UnixFileMode.OtherRead;
    private const UnixFileMode DirMode0750 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
    private readonly string _root;
    private bool _recognised;
    /// <summary>Set once a write found the marker and its file system (a read's recognition does not check the file system).</summary>
    private bool _writable;

    /// <summary>A store in the directory <paramref name="root"/> (a file:// URL's path).</summary>
    public LocalObjectStore(string root)
    {
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
    }

    /// <inheritdoc />
    public string Description => "file://" + _root;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => null;

    /// <inheritdoc />
    public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        var path = PathOf(key);
        var dir = Path.GetDirectoryName(path)!;
        await PrepareForWriteAsync(key, ct).ConfigureAwait(false);
        // The marker also says which file system the store was made on, which only the local store knows: it adds that to store-init's.
        if (key == StoreLayout.StoreMarkerKey)
            content = new MemoryStream((StoreMarker.Parse(content, key) with { FileSystem = Posix.FileSystemIdentity(_root) }).Encode());
        CreateDirectoryDurably(dir);
        if (File.Exists(path)) return await ExistingDurableAsync(key, path, dir, ct).ConfigureAwait(false);

        var temp = Path.Combine(dir, $"{TempPrefix}{Path.GetFileName(path)}.{Guid.NewGuid():N}");
        try
        {
            await using (var file = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 1 << 16,
                Options = FileOptions.Asynchronous, UnixCreateMode = key == StoreLayout.StoreMarkerKey ? FileMode0644 : FileMode0640,
            }))
            {
                await file.WriteAsync(EncodeHeader(metadata), ct).ConfigureAwait(false);
                await content.CopyToAsync(file, 1 << 18, ct).ConfigureAwait(false);
                await file.FlushAsync(ct).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            GiveToStoreOwner(temp);
            if (!MoveNoReplace(temp, path))
                return await ExistingDurableAsync(key, path, dir, ct).ConfigureAwait(false);
            Posix.FSyncDirectory(dir);
            return new PutOutcome.Created();
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new StoreUnavailableException($"cannot write {key} to {Description}: {e.Message}", transient: IsOutage(e), e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new StoreUnavailableException($"cannot write {key} to {Description}: permission denied", transient: false, e);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    /// <summary>
    /// "Already there" is an answer a caller may act on (an identical re-push is success): the object it found may
    /// have been written by a run killed before its fsyncs, so the file and its directory entry are made durable first.
    /// </summary>
    private async Task<PutOutcome> ExistingDurableAsync(string key, string path, string dir, CancellationToken ct)
    {
        var info = await ReadInfoAsync(key, path, ct).ConfigureAwait(false);
        try
        {
            Posix.FSyncFile(path);
            Posix.FSyncDirectory(dir);
        }
        catch (IOException e)
        {
            throw new StoreUnavailableException($"cannot make {key} in {Description} durable: {e.Message}", transient: false, e);
        }
        return new PutOutcome.AlreadyExists(info);
    }

    /// <inheritdoc />
    public async Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct)
    {
        var path = PathOf(key);
        EnsureRootExists();
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (UnauthorizedAccessException e)
        {
            throw new StoreUnavailableException($"cannot read {key} from {Description}: permission denied", transient: false, e);
        }
        try
        {
            var (metadata, headerLength) = await ReadHeaderAsync(file, key, ct).ConfigureAwait(false);
            return new StoredObject(new ObjectInfo(key, file.Length - headerLength, metadata), file);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public async Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct)
    {
        var path = PathOf(key);
        EnsureRootExists();
        try
        {
            return await ReadInfoAsync(key, path, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ListedObject> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
    {
        EnsureRootExists();
        var slash = prefix.LastIndexOf('/');
        var startDir = slash < 0 ? _root : Path.Combine(_root, prefix[..slash]);
        if (!Directory.Exists(startDir)) yield break;

        var found = new List<ListedObject>();
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false };
        foreach (var file in new DirectoryInfo(startDir).EnumerateFiles("*", options))
        {
            if (file.Name.StartsWith('.')) continue; // temp files of puts in flight or killed: never objects
            var key = Path.GetRelativePath(_root, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (key.StartsWith(prefix, StringComparison.Ordinal)) found.Add(new ListedObject(key, file.Length));
        }
        found.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        foreach (var item in found)
        {
            ct.ThrowIfCancellationRequested();
            yield return item;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string key, CancellationToken ct)
    {
        var path = PathOf(key);
        EnsureRootExists();
        if (!File.Exists(path)) return Task.FromResult(false);
        File.Delete(path);
        Posix.FSyncDirectory(Path.GetDirectoryName(path)!);
        return Task.FromResult(true);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct)
    {
        EnsureRootExists();
        var found = new List<string>();
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true };
        foreach (var file in new DirectoryInfo(_root).EnumerateFiles(TempPrefix + "*", options))
        {
            ct.ThrowIfCancellationRequested();
            if (file.LastWriteTimeUtc >= before.UtcDateTime) continue; // perhaps a write in progress
            found.Add(Path.GetRelativePath(_root, file.FullName));
            if (!dryRun) file.Delete();
        }
        return Task.FromResult<IReadOnlyList<string>>(found);
    }

    /// <summary>
    /// Reads only from a recognised store: a missing directory, or one without the store marker (an unmounted
    /// volume's empty mount point), is "unavailable", never "absent", so recovery is not ended early. Stores
    /// written before the marker existed are recognised by their manifest directory.
    /// </summary>
    private void EnsureRootExists()
    {
        if (_recognised) return;
        if (!Directory.Exists(_root))
            throw new StoreUnavailableException($"store directory {_root} does not exist (not mounted?); a new store is made with cloudarchive " +
                $"store-init", transient: false);
        if (!IsStore())
            throw new StoreUnavailableException($"{_root} is not a CloudArchive store (it has no {StoreLayout.StoreMarkerKey}): is its volume mounted? A " +
                $"new store is made with cloudarchive store-init", transient: false);
        _recognised = true;
    }

    private bool IsStore() => File.Exists(Path.Combine(_root, StoreLayout.StoreMarkerKey)) || Directory.Exists(Path.Combine(_root, "manifest"));

    /// <summary>
    /// A write never makes a store: only store-init, writing the marker, creates the directory (inside an existing parent)
    /// and marks it. WAL pushed into an unmounted volume's empty mount point would land on the root disk and vanish from
    /// view when the volume comes back, leaving a gap in the archive; so a write into a directory without the marker
    /// fails (exit 4), and so does one into a marked directory on another file system than the marker names (a copy of
    /// the store left on the root disk).
    /// </summary>
    private async Task PrepareForWriteAsync(string key, CancellationToken ct)
    {
        if (_writable) return;
        var marking = key == StoreLayout.StoreMarkerKey;
        if (!Directory.Exists(_root))
        {
            var parent = Path.GetDirectoryName(_root)!;
            if (!marking || !Directory.Exists(parent))
                throw new StoreUnavailableException($"store directory {_root} does not exist (not mounted?); nothing is written outside an existing store: " +
                    $"create it with cloudarchive store-init", transient: false);
            CreateDirectoryDurably(_root);
        }
        if (marking) return;
        if (!IsStore())
            throw new StoreUnavailableException($"{_root} is not a CloudArchive store (it has no {StoreLayout.StoreMarkerKey}): is its volume mounted? " +
                $"Nothing is written into it; a new store is made with cloudarchive store-init", transient: false);
        var marker = Path.Combine(_root, StoreLayout.StoreMarkerKey);
        // A store made before the marker existed (recognised by its manifest) gets one now, naming the file system it is on.
        if (!File.Exists(marker)) WriteMarker();
        else await CheckFileSystemAsync(marker, ct).ConfigureAwait(false);
        _recognised = _writable = true;
    }

    /// <summary>The marker names the file system the store was made on (markers written before that name none, and pass).</summary>
    private async Task CheckFileSystemAsync(string marker, CancellationToken ct)
    {
        string? made;
        try
        {
            await using var file = new FileStream(marker, FileMode.Open, FileAccess.Read, FileShare.Read, 4096, FileOptions.Asynchronous);
            await ReadHeaderAsync(file, StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false);
            made = StoreMarker.Parse(file, marker).FileSystem;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreUnavailableException($"cannot read {marker}: {e.Message}", transient: false, e);
        }
        if (made is null) return;
        var now = Posix.FileSystemIdentity(_root);
        if (made != now)
            throw new StoreUnavailableException($"{_root} is marked as a store made on another file system ({made}) than the one it is on now ({now}): " +
                $"is its volume unmounted and this a copy on another disk? Nothing is written into it. If the store itself moved to this file system, " +
                $"move {StoreLayout.StoreMarkerKey} aside and run cloudarchive store-init --archive-id with its \"archive\"", transient: false);
    }

    private void WriteMarker()
    {
        var path = Path.Combine(_root, StoreLayout.StoreMarkerKey);
        var temp = Path.Combine(_root, $"{TempPrefix}{StoreLayout.StoreMarkerKey}.{Guid.NewGuid():N}");
        try
        {
            using (var file = new FileStream(temp,
                new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = FileMode0644 }))
            {
                file.Write(EncodeHeader(new ObjectMetadata()));
                file.Write(new StoreMarker(null, Posix.FileSystemIdentity(_root)).Encode());
                file.Flush(flushToDisk: true);
            }
            GiveToStoreOwner(temp);
            MoveNoReplace(temp, path); // another writer's marker is as good as ours
            Posix.FSyncDirectory(_root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreUnavailableException($"cannot mark {_root} as a CloudArchive store: {e.Message}", transient: false, e);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private string PathOf(string key)
    {
        if (key.Length == 0 || key.StartsWith('/') || key.EndsWith('/') || key.Contains('\\')
            || key.Split('/').Any(part => part.Length == 0 || part.StartsWith('.')))
            throw new ArgumentException($"invalid object key '{key}'", nameof(key));
        return Path.Combine(_root, key);
    }

    private static bool MoveNoReplace(string temp, string path)
    {
        var errno = Posix.RenameNoReplaceErrno(temp, path);
        if (errno == 0) return true;
        if (errno == Posix.EExist) return false;
        if (errno is not (Posix.EInval or Posix.ENoSys or Posix.EOpNotSupp))
            throw new IOException($"rename into {path} failed (errno {errno})");
        // No RENAME_NOREPLACE on this file system: link(2) is just as atomic and also refuses to replace.
        errno = Posix.LinkErrno(temp, path);
        if (errno == 0) return true;
        if (errno == Posix.EExist) return false;
        throw new IOException($"this file system supports neither RENAME_NOREPLACE nor hard links (errno {errno}); it cannot guarantee no-overwrite writes");
    }

    private void CreateDirectoryDurably(string dir)
    {
        if (Directory.Exists(dir)) return;
        var parent = Path.GetDirectoryName(dir)!;
        if (dir != _root) CreateDirectoryDurably(parent);
        try
        {
            Directory.CreateDirectory(dir, DirMode0750);
            if (dir != _root) GiveToStoreOwner(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreUnavailableException($"cannot create {dir} in {Description}: {e.Message}", transient: false, e);
        }
        if (Directory.Exists(parent)) Posix.FSyncDirectory(parent);
    }

    /// <summary>
    /// What root writes into another user's store (a restore's lease: restore may run as root) is given to the store
    /// directory's owner, or the cluster's user, who runs everything else, could neither read nor remove it.
    /// </summary>
    private void GiveToStoreOwner(string path)
    {
        if (Posix.EffectiveUserId != 0) return;
        var (user, group) = Posix.OwnersOf(_root);
        if (user != 0) Posix.ChangeOwner(path, user, group);
    }

    private static byte[] EncodeHeader(ObjectMetadata metadata)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string>(metadata), ManifestJson.Default.DictionaryStringString);
        var header = new byte[Magic.Length + 4 + json.Length];
        Magic.CopyTo(header, 0);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(Magic.Length), json.Length);
        json.CopyTo(header, Magic.Length + 4);
        return header;
    }

    private async Task<ObjectInfo> ReadInfoAsync(string key, string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096, FileOptions.Asynchronous);
        var (metadata, headerLength) = await ReadHeaderAsync(file, key, ct).ConfigureAwait(false);
        return new ObjectInfo(key, file.Length - headerLength, metadata);
    }

    private async Task<(ObjectMetadata, int)> ReadHeaderAsync(FileStream file, string key, CancellationToken ct)
    {
        var fixedPart = new byte[Magic.Length + 4];
        try
        {
            await file.ReadExactlyAsync(fixedPart, ct).ConfigureAwait(false);
            if (!fixedPart.AsSpan(0, Magic.Length).SequenceEqual(Magic)) throw new InvalidDataException("bad magic");
            var length = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(Magic.Length));
            if (length is < 0 or > 1 << 20) throw new InvalidDataException("bad header length");
            var json = new byte[length];
            await file.ReadExactlyAsync(json, ct).ConfigureAwait(false);
            var dict = JsonSerializer.Deserialize(json, ManifestJson.Default.DictionaryStringString) ?? [];
            return (new ObjectMetadata(dict), fixedPart.Length + length);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or JsonException)
        {
            throw new Core.Pipeline.CorruptObjectException($"{key} in {Description} is not a CloudArchive object ({e.Message})", e);
        }
    }

    /// <summary>
    /// A full disk, an I/O error, a file system remounted read-only or a stale NFS handle: the store's volume is down and may
    /// come back (retried, and an outage for --max-queue-bytes); permission denied and the like are mistakes to fix.
    /// </summary>
    private static bool IsOutage(IOException e) => e.HResult is 28 or 5 or 30 or 116 or 110 || e.Message.Contains("No space left", StringComparison.Ordinal);

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
