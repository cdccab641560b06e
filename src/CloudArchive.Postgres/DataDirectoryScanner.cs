using System.Text.RegularExpressions;
using CloudArchive.Core.Backup;

namespace CloudArchive.Postgres;

/// <summary>A file or directory to back up: its path in the backup and where it is read from.</summary>
internal sealed record ScannedEntry(string Path, string Source, bool IsDirectory, long Size, int Mode);

/// <summary>
/// Walks a data directory and its tablespaces, leaving out what the manual says a base backup should
/// omit: pg_wal's contents, postmaster.pid/opts, the contents of pg_replslot, pg_dynshmem, pg_notify,
/// pg_serial, pg_snapshots, pg_stat_tmp and pg_subtrans, temporary files and temporary relations.
/// Directories whose contents are left out are kept, empty, because the server needs them.
/// </summary>
internal static partial class DataDirectoryScanner
{
    private static readonly HashSet<string> ContentsExcluded = new(StringComparer.Ordinal)
    {
        "pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans",
    };

    private static readonly HashSet<string> FilesExcluded = new(StringComparer.Ordinal)
    {
        "postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "backup_manifest", "current_logfiles",
        "postgresql.auto.conf.tmp", "recovery.signal", "standby.signal", "backup_label.old",
    };

    [GeneratedRegex(@"^t\d+_\d+(_(fsm|vm|init))?(\.\d+)?$")]
    private static partial Regex TemporaryRelation();

    /// <summary>Everything to back up: the data directory, then each tablespace as pg_tblspc/OID, global/pg_control last.</summary>
    public static List<ScannedEntry> Scan(string pgdata, IReadOnlyList<BackupTablespace> tablespaces)
    {
        var result = new List<ScannedEntry>();
        Walk(new DirectoryInfo(pgdata), "", topLevel: true, result);
        foreach (var ts in tablespaces)
        {
            var root = $"pg_tblspc/{ts.Oid}";
            result.Add(new ScannedEntry(root, ts.Location, true, 0, 0x1C0));
            if (Directory.Exists(ts.Location)) Walk(new DirectoryInfo(ts.Location), root + "/", topLevel: false, result);
        }
        // pg_control last: the backup's copy should be as new as possible (as pg_basebackup does).
        var control = result.FindIndex(e => e.Path == "global/pg_control");
        if (control >= 0)
        {
            var c = result[control];
            result.RemoveAt(control);
            result.Add(c);
        }
        return result;
    }

    private static void Walk(DirectoryInfo dir, string prefix, bool topLevel, List<ScannedEntry> into)
    {
        FileSystemInfo[] children;
        try
        {
            children = dir.GetFileSystemInfos();
        }
        catch (DirectoryNotFoundException)
        {
            return; // dropped while we walked (a database or tablespace): WAL replay removes it anyway
        }
        Array.Sort(children, (a, b) => string.CompareOrdinal(a.Name, b.Name));
        foreach (var child in children)
        {
            var path = prefix + child.Name;
            if (child.Name.StartsWith("pgsql_tmp", StringComparison.Ordinal)) continue;
            if (child is DirectoryInfo || (child.LinkTarget is not null && Directory.Exists(child.FullName)))
            {
                if (topLevel && child.Name == "pg_tblspc")
                {
                    into.Add(new ScannedEntry(path, child.FullName, true, 0, Mode(child)));
                    continue; // tablespaces are walked from their real location
                }
                into.Add(new ScannedEntry(path, child.FullName, true, 0, Mode(child)));
                if (topLevel && ContentsExcluded.Contains(child.Name))
                {
                    if (child.Name == "pg_wal") into.Add(new ScannedEntry("pg_wal/archive_status", "", true, 0, 0x1C0));
                    continue;
                }
                Walk(new DirectoryInfo(child.FullName), path + "/", topLevel: false, into);
            }
            else if (child is FileInfo file)
            {
                if (topLevel && FilesExcluded.Contains(child.Name)) continue;
                if (child.Name == "pg_internal.init" || TemporaryRelation().IsMatch(child.Name)) continue;
                long size;
                try { size = file.Length; } catch (FileNotFoundException) { continue; }
                into.Add(new ScannedEntry(path, file.FullName, false, size, Mode(child)));
            }
        }
    }

    private static int Mode(FileSystemInfo info)
    {
        try { return (int)info.UnixFileMode; } catch (IOException) { return 0x180; }
    }
}
