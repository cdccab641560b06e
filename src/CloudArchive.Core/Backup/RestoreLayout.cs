using System.Globalization;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Backup;

/// <summary>A tablespace of a backup and the directory it is restored into.</summary>
/// <param name="Moved">True when --tablespace-map moved it; false when it goes back to the location the backup recorded.</param>
public sealed record RestoredTablespace(uint Oid, string Name, string RecordedLocation, string Location, bool Moved);

/// <summary>
/// Where every path of a backup record goes on disk, decided and checked before anything is written. The record
/// comes from the store, which others may be able to write to: each file, directory and tablespace path must
/// resolve inside the restore directory or inside its own tablespace's directory, tablespace OIDs and locations
/// must be well-formed and distinct, and no tablespace lands in a place the operator did not name or confirm.
/// Anything else is a corrupt backup (exit 5), found before the first directory is created.
/// </summary>
public sealed class RestoreLayout
{
    /// <summary>The lowest OID a user-created object (and so a tablespace in pg_tblspc) can have.</summary>
    private const uint FirstNormalObjectId = 16384;

    private readonly string _backupId;
    private readonly Dictionary<uint, string> _locations;

    private RestoreLayout(string backupId, string dataDirectory, List<RestoredTablespace> tablespaces)
    {
        _backupId = backupId;
        DataDirectory = dataDirectory;
        Tablespaces = tablespaces;
        _locations = tablespaces.ToDictionary(t => t.Oid, t => t.Location);
    }

    /// <summary>The data directory to restore into (absolute).</summary>
    public string DataDirectory { get; }
    /// <summary>Where each tablespace of the backup is restored.</summary>
    public IReadOnlyList<RestoredTablespace> Tablespaces { get; }

    /// <param name="tablespaceMap">--tablespace-map OLD=NEW, both absolute.</param>
    /// <param name="inPlace">--tablespace-in-place: the operator confirms restoring unmapped tablespaces to their recorded locations.</param>
    public static RestoreLayout Resolve(BackupRecord backup, string targetDir, IReadOnlyDictionary<string, string> tablespaceMap, bool inPlace)
    {
        var root = Normal(Path.GetFullPath(targetDir));
        var tablespaces = new List<RestoredTablespace>();
        foreach (var ts in backup.Tablespaces)
        {
            if (ts.Oid < FirstNormalObjectId || tablespaces.Any(t => t.Oid == ts.Oid))
                throw Corrupt(backup, $"names tablespace OID {ts.Oid.ToString(CultureInfo.InvariantCulture)}, which no tablespace of a cluster can have " +
                    $"(or has twice)");
            if (!IsCleanAbsolute(ts.Location) || HasControl(ts.Name))
                throw Corrupt(backup, $"records tablespace {Printable(ts.Name)} at '{Printable(ts.Location)}', which is not a clean absolute path");
            var moved = tablespaceMap.TryGetValue(ts.Location, out var to);
            if (!moved && !inPlace)
                throw new CloudArchiveException(ExitCode.Usage,
                    $"backup {backup.Id} has tablespace {ts.Name} (OID {ts.Oid}) at {ts.Location}, outside --to: restore it elsewhere with " +
                        $"--tablespace-map {ts.Location}=NEW, or confirm that location with --tablespace-in-place");
            var location = Normal(Path.GetFullPath(moved ? to! : ts.Location));
            tablespaces.Add(new RestoredTablespace(ts.Oid, ts.Name, ts.Location, location, moved));
        }
        foreach (var old in tablespaceMap.Keys.Where(k => backup.Tablespaces.All(t => t.Location != k)))
            throw new CloudArchiveException(ExitCode.Usage, $"--tablespace-map {old}=...: backup {backup.Id} has no tablespace at {old}");

        // No tablespace directory inside another one or the data directory, or around them: each file has one home.
        var homes = tablespaces.Select(t => (What: $"tablespace {t.Name}'s directory {t.Location}", Dir: t.Location))
            .Prepend((What: "the restore directory " + root, Dir: root)).ToList();
        for (var i = 0; i < homes.Count; i++)
            for (var j = i + 1; j < homes.Count; j++)
                if (Within(homes[i].Dir, homes[j].Dir) || Within(homes[j].Dir, homes[i].Dir))
                    throw new CloudArchiveException(ExitCode.Usage, $"{homes[j].What} and {homes[i].What} overlap; give each tablespace a directory of its " +
                        $"own outside --to (--tablespace-map OLD=NEW)");

        var layout = new RestoreLayout(backup.Id, root, tablespaces);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in backup.Entries)
        {
            if (entry.Bundle < 0 || entry.Bundle >= Math.Max(1, backup.Bundles.Count))
                throw Corrupt(backup, $"puts '{Printable(entry.Path)}' in bundle {entry.Bundle}, which it does not have");
            if (!seen.Add(layout.Destination(entry.Path))) throw Corrupt(backup, $"lists '{Printable(entry.Path)}' twice");
        }
        return layout;
    }

    /// <summary>
    /// The file system path of a backup path: under the restore directory, or under its tablespace's directory for
    /// pg_tblspc/OID/...; a path that would leave them is a <see cref="CorruptObjectException"/>.
    /// </summary>
    public string Destination(string path)
    {
        // pg_basebackup names a few entries "./pg_wal/..." (backup-push --remote records them as it got them).
        if (path.StartsWith("./", StringComparison.Ordinal)) path = path[2..];
        if (path.Length == 0 || path.StartsWith('/') || HasControl(path)
            || path.Split('/').Any(part => part is "" or "." or ".."))
            throw Unsafe(path);
        string root, rest;
        if (path.StartsWith("pg_tblspc/", StringComparison.Ordinal))
        {
            var tail = path["pg_tblspc/".Length..];
            var slash = tail.IndexOf('/');
            var oidText = slash < 0 ? tail : tail[..slash];
            if (!uint.TryParse(oidText, NumberStyles.None, CultureInfo.InvariantCulture, out var oid) || !_locations.TryGetValue(oid, out var location))
                throw new CorruptObjectException($"backup {_backupId} is corrupt or forged: '{Printable(path)}' is under pg_tblspc but its record has no " +
                    $"tablespace {Printable(oidText)}; nothing was restored");
            (root, rest) = (location, slash < 0 ? "" : tail[(slash + 1)..]);
        }
        else
        {
            (root, rest) = (DataDirectory, path);
        }
        var full = rest.Length == 0 ? root : Path.GetFullPath(Path.Combine(root, rest));
        if (full != root && !Within(full, root)) throw Unsafe(path);
        return full;
    }

    private CorruptObjectException Unsafe(string path) =>
        new($"backup {_backupId} is corrupt or forged: its record names the path '{Printable(path)}', which leaves the restore directory; nothing " +
            $"was restored");

    private static CorruptObjectException Corrupt(BackupRecord backup, string what) =>
        new($"backup {backup.Id} is corrupt or forged: its record {what}; nothing was restored");

    private static bool IsCleanAbsolute(string path) =>
        path.Length > 1 && path.StartsWith('/') && !HasControl(path) && path.Length < 4096
        && path.Split('/').Skip(1).All(part => part is not ("" or "." or ".."));

    private static bool HasControl(string s) => s.Any(char.IsControl);

    private static bool Within(string path, string dir) => path.StartsWith(dir == "/" ? "/" : dir + "/", StringComparison.Ordinal) || path == dir;

    private static string Normal(string path) => path.Length > 1 ? path.TrimEnd('/') : path;

    /// <summary>A value from the store, safe to print on one line.</summary>
    public static string Printable(string s)
    {
        var clean = WithoutControlCharacters(s);
        return clean.Length > 200 ? clean[..200] + "..." : clean;
    }

    /// <summary>Text from outside (a value from the store, a line of a server's log) with each control character as '?'.</summary>
    public static string WithoutControlCharacters(string s) => new(s.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
