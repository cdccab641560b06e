using System.Globalization;
using CloudArchive.Core.Spool;

namespace CloudArchive.Core.Storage;

/// <summary>One key the second store lacks, and since when.</summary>
/// <param name="Key">The object's key (with its cluster history's prefix).</param>
/// <param name="Since">When it was first missed.</param>
public sealed record BacklogEntry(string Key, DateTimeOffset Since);

/// <summary>
/// What the second store missed (--store-2-mode best-effort, or a failed write in required mode): one line a key in
/// <c>SPOOL/store-2/backlog</c>, fsynced before the write that missed it returns, so that wal-push's exit 0 never hides a
/// gap; the catch-up copies each key from the first store and removes it. Beside it, <c>down</c>: touched when the second
/// store was unreachable, so that the next pushes of a best-effort archive do not each wait for it (<see cref="RecentlyDown"/>).
/// </summary>
public sealed class StoreBacklog
{
    /// <summary>The spool's subdirectory of the second store's backlog.</summary>
    public const string DirectoryName = "store-2";

    private readonly string _path;
    private readonly string _lock;
    private readonly string _down;

    private StoreBacklog(string directory)
    {
        Directory = directory;
        _path = Path.Combine(directory, "backlog");
        _lock = Path.Combine(directory, "backlog.lock");
        _down = Path.Combine(directory, "down");
    }

    /// <summary>The backlog's directory.</summary>
    public string Directory { get; }

    /// <summary>The backlog of the spool at <paramref name="spoolRoot"/>, its directory made (0700) when missing.</summary>
    public static StoreBacklog In(string spoolRoot) => new(SpoolLocation.Ensure(spoolRoot, DirectoryName));

    /// <summary>The backlog of the spool at <paramref name="spoolRoot"/> for reading (status, metrics); null when there is none.</summary>
    public static StoreBacklog? Find(string spoolRoot)
    {
        var dir = Path.Combine(spoolRoot, DirectoryName);
        return System.IO.Directory.Exists(dir) ? new StoreBacklog(dir) : null;
    }

    /// <summary>The backlog of the spool a reporting command is pointed at (--spool-dir, else pg_wal/.cloudarchive of --pgdata or of the data directory it runs in); null when none.</summary>
    public static StoreBacklog? FindFor(string? spoolDir, string? pgdata) =>
        SpoolLocation.Resolve(spoolDir, SpoolLocation.DataDirectory(pgdata)) is { } root ? Find(root) : null;

    /// <summary>Whether any key waits (a stat, no lock).</summary>
    public bool HasEntries => File.Exists(_path) && new FileInfo(_path).Length > 0;

    /// <summary>Adds <paramref name="key"/>, durably (fsync) before it returns.</summary>
    public void Add(string key)
    {
        if (key.Contains('\n') || key.Contains('\t')) throw new ArgumentException("a store key has no tab or line break", nameof(key));
        using var held = Lock();
        var created = !File.Exists(_path);
        using (var file = new FileStream(_path, new FileStreamOptions
               {
                   Mode = FileMode.Append, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        {
            var line = System.Text.Encoding.UTF8.GetBytes($"{DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}\t{key}\n");
            file.Write(line);
            file.Flush(flushToDisk: true);
        }
        if (created) Native.Posix.FSyncDirectory(Directory);
    }

    /// <summary>Every key waiting, each once, with the time it was first missed, oldest first.</summary>
    public IReadOnlyList<BacklogEntry> Read()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(_path);
        }
        catch (FileNotFoundException)
        {
            return [];
        }
        var entries = new Dictionary<string, BacklogEntry>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            var tab = line.IndexOf('\t');
            // A line cut short by a crash mid-write is no entry (its write did not return, so nothing counted on it).
            if (tab <= 0 || !long.TryParse(line.AsSpan(0, tab), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)) continue;
            var key = line[(tab + 1)..];
            if (key.Length > 0 && !entries.ContainsKey(key)) entries[key] = new BacklogEntry(key, DateTimeOffset.FromUnixTimeSeconds(seconds));
        }
        return [.. entries.Values.OrderBy(e => e.Since)];
    }

    /// <summary>Removes <paramref name="keys"/> (caught up), by writing the rest to a new file that replaces the backlog.</summary>
    public void Remove(IReadOnlyCollection<string> keys)
    {
        if (keys.Count == 0) return;
        var gone = new HashSet<string>(keys, StringComparer.Ordinal);
        using var held = Lock();
        var rest = Read().Where(e => !gone.Contains(e.Key)).ToList();
        var temp = _path + ".new";
        using (var file = new FileStream(temp, new FileStreamOptions
               {
                   Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        {
            foreach (var e in rest)
                file.Write(System.Text.Encoding.UTF8.GetBytes($"{e.Since.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}\t{e.Key}\n"));
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, _path, overwrite: true);
        Native.Posix.FSyncDirectory(Directory);
    }

    /// <summary>The second store was found unreachable now.</summary>
    public void MarkDown()
    {
        File.WriteAllText(_down, DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture));
    }

    /// <summary>The second store answered again.</summary>
    public void ClearDown() => File.Delete(_down);

    /// <summary>Whether the second store was found unreachable less than <paramref name="window"/> ago.</summary>
    public bool RecentlyDown(TimeSpan window) => File.Exists(_down) && DateTime.UtcNow - File.GetLastWriteTimeUtc(_down) < window;

    /// <summary>The backlog's lock: writers in several processes (wal-push, its worker, the agent) add and remove under it.</summary>
    private SpoolLock Lock()
    {
        for (var i = 0; ; i++)
        {
            if (SpoolLock.TryAcquire(_lock) is { } held) return held;
            if (i >= 1000) throw new CloudArchiveException(ExitCode.InvalidInput, $"the second store's backlog {_path} stays locked by another process");
            Thread.Sleep(10);
        }
    }
}
