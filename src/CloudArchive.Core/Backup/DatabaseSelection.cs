using System.Globalization;
using System.Text.RegularExpressions;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Backup;

/// <summary>
/// restore --db-include: the databases restored whole (those named, and the system databases template0, template1 and
/// postgres, whose OIDs are below 16384 and which are always restored), the shared catalog (global/) and every file
/// outside a database directory; every file of another database (under base/OID and pg_tblspc/SPC/PG_.../OID, in
/// whichever tablespace) is written as a sparse file of zeros at its recorded size, as pgBackRest does: WAL replay
/// applies to it (a zero page rather than a missing one, so recovery finds no reference to an invalid page), the
/// database cannot be connected to (its catalog is zeros), and DROP DATABASE removes it.
/// </summary>
public sealed partial class DatabaseSelection
{
    /// <summary>OIDs from here on are given by the running cluster; below it, initdb's (template0, template1, postgres).</summary>
    public const uint FirstNormalObjectId = 16384;

    private readonly HashSet<uint> _kept;

    private DatabaseSelection(HashSet<uint> kept, IReadOnlyList<BackupDatabase> included, IReadOnlyList<BackupDatabase> others)
    {
        _kept = kept;
        Included = included;
        Others = others;
    }

    /// <summary>The databases named, as the backup records them.</summary>
    public IReadOnlyList<BackupDatabase> Included { get; }

    /// <summary>The user databases not named: restored as zeros, to be dropped.</summary>
    public IReadOnlyList<BackupDatabase> Others { get; }

    [GeneratedRegex(@"^(?:base|pg_tblspc/\d+/PG_[^/]+)/(\d+)/")]
    private static partial Regex DatabaseFile();

    /// <summary>
    /// The selection of <paramref name="names"/> in <paramref name="backup"/>; null when none is named. Refused with one
    /// line: a backup that records no database names (exit 2), a name it does not have (exit 2), a record whose list is
    /// not sane (exit 5), a named database with no directory in the backup (exit 2).
    /// </summary>
    public static DatabaseSelection? Resolve(BackupRecord backup, IReadOnlyList<string> names)
    {
        if (names.Count == 0) return null;
        if (backup.Databases is not { } databases)
            throw new CloudArchiveException(ExitCode.Usage, $"--db-include: backup {backup.Id} does not record which database is which directory " +
                "(it was taken before backup-push recorded database names); restore it whole, or take a new backup");
        var byName = new Dictionary<string, BackupDatabase>(StringComparer.Ordinal);
        var oids = new HashSet<uint>();
        foreach (var d in databases)
            if (d.Oid == 0 || d.Name.Length is 0 or > 256 || d.Name.Any(char.IsControl) || !oids.Add(d.Oid) || !byName.TryAdd(d.Name, d))
                throw new CorruptObjectException($"backup {backup.Id}'s record is corrupt: its database list names " +
                    $"'{RestoreLayout.Printable(d.Name)}' (OID {d.Oid}) twice, empty or unprintable");
        var kept = new HashSet<uint>();
        var included = new List<BackupDatabase>();
        foreach (var name in names.Distinct(StringComparer.Ordinal))
        {
            if (!byName.TryGetValue(name, out var d))
                throw new CloudArchiveException(ExitCode.Usage, $"--db-include: backup {backup.Id} has no database '{RestoreLayout.Printable(name)}' " +
                    $"(it has {string.Join(", ", databases.Select(x => x.Name).Order(StringComparer.Ordinal).Select(RestoreLayout.Printable))})");
            included.Add(d);
            kept.Add(d.Oid);
        }
        var withFiles = backup.Entries.Select(e => OidOf(e.Path + "/")).Where(o => o is not null).Select(o => o!.Value).ToHashSet();
        if (included.FirstOrDefault(d => !withFiles.Contains(d.Oid)) is { } missing)
            throw new CloudArchiveException(ExitCode.Usage, $"--db-include: database '{RestoreLayout.Printable(missing.Name)}' (OID {missing.Oid}) has no " +
                $"directory in backup {backup.Id} (base/{missing.Oid} or one in a tablespace): it was created or moved while the backup ran; restore it whole");
        return new DatabaseSelection(kept, included, databases.Where(d => d.Oid >= FirstNormalObjectId && !kept.Contains(d.Oid)).OrderBy(d => d.Name, StringComparer.Ordinal).ToList());
    }

    /// <summary>Whether the file at <paramref name="path"/> belongs to a database not restored: written as zeros, nothing read for it.</summary>
    public bool IsZeroed(string path) => OidOf(path) is { } oid && oid >= FirstNormalObjectId && !_kept.Contains(oid);

    private static uint? OidOf(string path)
    {
        var m = DatabaseFile().Match(path);
        return m.Success && uint.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var oid) ? oid : null;
    }
}
