using System.Diagnostics;
using CloudArchive.Core.Spool;

namespace CloudArchive.Core.Wal;

/// <summary>
/// The prefetch spool of wal-fetch: <c>&lt;spool&gt;/prefetch/</c> holds verified segments under their own
/// names, so the restore_command of a spooled segment is a rename. Everything in it belongs to the store and
/// database system named by IDENTITY; a spool left by another store or cluster is emptied before use.
/// Hidden files (a leading dot) are downloads in progress and are never handed out.
/// </summary>
internal sealed class PrefetchSpool
{
    public const string SubDirectory = "prefetch";
    private const string IdentityFile = "IDENTITY";
    private const string LockFile = "prefetch.lock";
    private const string LogFile = "prefetch.log";
    private const string PositionFile = "POSITION";
    private const long MaxLogSize = 1024 * 1024;

    private PrefetchSpool(string dir, string identity, ulong? systemIdentifier)
    {
        Dir = dir;
        Identity = identity;
        SystemIdentifier = systemIdentifier;
    }

    public string Dir { get; }
    public string Identity { get; }
    public ulong? SystemIdentifier { get; }
    public string LockPath => Path.Combine(Dir, LockFile);
    public string LogPath => Path.Combine(Dir, LogFile);

    /// <summary>The spool under <paramref name="spoolRoot"/>, created if missing (0700).</summary>
    /// <param name="storeIdentity">What names the store (URL, endpoint); only its SHA-256 is written to disk.</param>
    /// <param name="dataDirectory">The data directory in recovery, if known: its system identifier joins the identity.</param>
    public static PrefetchSpool Open(string spoolRoot, string storeIdentity, string? dataDirectory)
    {
        var dir = SpoolLocation.Ensure(spoolRoot, SubDirectory);
        var system = dataDirectory is null ? null : ReadSystemIdentifier(dataDirectory);
        var hash = Crypto.LightSha256.HexOf(storeIdentity);
        var identity = $"store-sha256={hash}\n"
            + $"system-identifier={(system is { } s ? s.ToString(System.Globalization.CultureInfo.InvariantCulture) : "unknown")}\n"
            + $"boot-id={BootId()}\n";
        return new PrefetchSpool(dir, identity, system);
    }

    /// <summary>
    /// This boot of the machine (/proc/sys/kernel/random/boot_id). Spooled files are not fsynced; after an
    /// OS crash or power loss they may hold anything, and the new boot id makes the spool start empty.
    /// </summary>
    private static string BootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown-" + Environment.ProcessId; // no boot id: a spool is good for one run only
        }
    }

    /// <summary>The database system identifier from global/pg_control; null when unreadable.</summary>
    public static ulong? ReadSystemIdentifier(string dataDirectory) => ControlFile.TryRead(dataDirectory)?.SystemIdentifier;

    /// <summary>
    /// True when the spool holds this identity's files, after emptying it if it held another's. The spool is
    /// emptied only under the prefetcher's lock, so no worker of the old identity can add a file afterwards;
    /// false (do not use the spool now) when a worker holds the lock while the identity differs.
    /// </summary>
    public bool Claim()
    {
        if (ReadIdentity() == Identity) return true;
        using var held = SpoolLock.TryAcquire(LockPath);
        if (held is null) return false;
        if (ReadIdentity() == Identity) return true;
        var removed = 0;
        foreach (var file in Directory.EnumerateFiles(Dir, "*", HiddenToo))
        {
            var name = Path.GetFileName(file);
            if (name is LockFile or LogFile) continue;
            File.Delete(file);
            removed++;
        }
        var temp = Path.Combine(Dir, "." + IdentityFile + ".tmp");
        File.WriteAllText(temp, Identity);
        File.Move(temp, Path.Combine(Dir, IdentityFile), overwrite: true);
        if (removed > 0) Log.Info($"prefetch spool {Dir} belonged to another store or cluster: removed its {removed} files");
        return true;
    }

    /// <summary>Notes the segment just restored, for a running worker to move its window on instead of exiting.</summary>
    public void RecordPosition(WalFileName restored) => File.WriteAllText(Path.Combine(Dir, PositionFile), restored.Name);

    /// <summary>The segment restored last, if it is on the timeline of <paramref name="after"/> and after it.</summary>
    public WalFileName? PositionAfter(WalFileName after)
    {
        try
        {
            return WalFileName.TryParse(File.ReadAllText(Path.Combine(Dir, PositionFile)), out var n)
                && n.Kind == WalFileKind.Segment && n.Timeline == after.Timeline && Compare(n, after) > 0 ? n : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Whether IDENTITY names this spool's store and cluster (a worker checks it under the lock).</summary>
    public bool IsClaimed() => ReadIdentity() == Identity;

    /// <summary>
    /// Moves the spooled <paramref name="name"/> to <paramref name="destination"/>; false when it is not spooled
    /// or does not pass the checks (then it is removed and the caller fetches from the store).
    /// </summary>
    public bool TryTake(WalFileName name, string destination)
    {
        var spooled = Path.Combine(Dir, name.Name);
        if (!File.Exists(spooled)) return false;
        if (!LooksComplete(name, spooled, out var why))
        {
            Log.Warn($"prefetch spool: {name} {why}; removed it, fetching from the store");
            TryDelete(spooled);
            return false;
        }
        var destDir = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        if (!Directory.Exists(destDir)) return false;
        // A rename on one file system; otherwise .NET copies into the hidden temp, so %p appears only complete.
        var temp = Path.Combine(destDir, $".{Path.GetFileName(destination)}.cloudarchive-tmp");
        try
        {
            File.Move(spooled, temp, overwrite: true);
            File.Move(temp, destination, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warn($"prefetch spool: cannot move {name} to {destination}: {e.Message}; fetching from the store");
            TryDelete(temp);
            return false;
        }
    }

    /// <summary>
    /// Waits while the running prefetcher downloads <paramref name="name"/> (its hidden file exists and it holds
    /// the lock), then takes it; false when there is no such download or it did not end with the file spooled.
    /// </summary>
    public async Task<bool> WaitAndTakeAsync(WalFileName name, string destination, TimeSpan limit, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < limit)
        {
            if (File.Exists(Path.Combine(Dir, name.Name))) return TryTake(name, destination);
            if (!IsDownloading(name) || !SpoolLock.IsHeld(LockPath)) return TryTake(name, destination);
            await Task.Delay(5, ct).ConfigureAwait(false);
        }
        return false;
    }

    private bool IsDownloading(WalFileName name) => Directory.EnumerateFiles(Dir, $".*{name.Name}*", HiddenToo).Any();

    /// <summary>
    /// After <paramref name="fetched"/> was restored: spooled segments of other timelines, or at or before it,
    /// are of no further use (PostgreSQL asks for later segments of the timeline it follows).
    /// </summary>
    public void RemoveBehind(WalFileName fetched)
    {
        foreach (var (name, path) in Spooled())
            if (name.Timeline != fetched.Timeline || Compare(name, fetched) <= 0) TryDelete(path);
    }

    /// <summary>The spooled segments (visible files with a segment name).</summary>
    public IEnumerable<(WalFileName Name, string Path)> Spooled()
    {
        foreach (var path in Directory.EnumerateFiles(Dir))
            if (WalFileName.TryParse(Path.GetFileName(path), out var n) && n.Kind == WalFileKind.Segment)
                yield return (n, path);
    }

    /// <summary>The hidden download files (a worker's, in progress or left by a killed one).</summary>
    public IEnumerable<string> Hidden() => Directory.EnumerateFiles(Dir, ".*", HiddenToo)
        .Where(f => WalFileName.TryParse(SegmentPart(Path.GetFileName(f)), out _));

    /// <summary>Keeps the worker's log short: it is appended to by every worker for the life of the data directory.</summary>
    public void TrimLog()
    {
        var log = new FileInfo(LogPath);
        if (log.Exists && log.Length > MaxLogSize)
            using (new FileStream(LogPath, FileMode.Truncate, FileAccess.Write)) { }
    }

    /// <summary>The WAL page header at the start of a file; null when there is none.</summary>
    public static WalSegmentHeader? ReadHeader(FileStream file)
    {
        Span<byte> bytes = stackalloc byte[WalSegmentHeader.Size];
        return WalSegmentHeader.TryRead(bytes[..file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false)]);
    }

    internal static int Compare(WalFileName a, WalFileName b) => (a.Log, a.Seg).CompareTo((b.Log, b.Seg));

    private bool LooksComplete(WalFileName name, string path, out string why)
    {
        // A crash of the machine can leave a renamed file shorter than written; the header and size catch that.
        try
        {
            using var f = File.OpenRead(path);
            var header = ReadHeader(f);
            why = header is null ? "has no WAL page header"
                : f.Length != header.SegmentSize ? $"is {f.Length} bytes, not {header.SegmentSize}"
                : header.PageAddress != name.StartLsn(header.SegmentSize) ? $"starts at LSN {header.PageAddress}, not where its name says"
                : SystemIdentifier is { } sys && header.SystemIdentifier != sys ? $"belongs to database system {header.SystemIdentifier}, not {sys}"
                : "";
            return why.Length == 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            why = "cannot be read: " + e.Message;
            return false;
        }
    }

    private string? ReadIdentity()
    {
        try
        {
            return File.ReadAllText(Path.Combine(Dir, IdentityFile));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string SegmentPart(string hiddenName)
    {
        var at = hiddenName.TrimStart('.');
        return at.Length >= 24 ? at[..24] : at;
    }

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Debug($"cannot remove {path}: {e.Message}");
        }
    }

    private static readonly EnumerationOptions HiddenToo = new() { AttributesToSkip = 0 };
}
