using CloudArchive.Native;

namespace CloudArchive.Core.Backup;

/// <summary>
/// A restore run as root leaves every file it wrote owned by the user who owns the place it restored into (the data
/// directory, else its nearest existing parent; each tablespace location the same way): the cluster's user, not root,
/// whom PostgreSQL refuses to run as. Any other user's restore writes its own files, as before.
/// </summary>
public sealed class RestoredOwnership
{
    private readonly List<(string Path, uint User, uint Group)> _roots = [];

    private RestoredOwnership()
    {
    }

    /// <summary>Who owns each place of <paramref name="layout"/>, taken before the restore creates anything; null unless this process is root.</summary>
    public static RestoredOwnership? Capture(RestoreLayout layout)
    {
        if (Posix.EffectiveUserId != 0) return null;
        var ownership = new RestoredOwnership();
        foreach (var path in layout.Tablespaces.Select(t => t.Location).Prepend(layout.DataDirectory))
        {
            var (user, group) = Posix.OwnersOf(NearestExisting(path));
            if (user == 0) continue;
            ownership._roots.Add((path, user, group));
            if (path == layout.DataDirectory) ownership.DataDirectoryOwner = (user, group);
        }
        return ownership;
    }

    /// <summary>Who the data directory's files are given to (null: root owns the place, nothing changes).</summary>
    public (uint User, uint Group)? DataDirectoryOwner { get; private set; }

    /// <summary>Gives every file, directory and link under each place (and the place itself) to its owner.</summary>
    public void Apply()
    {
        foreach (var (root, user, group) in _roots)
        {
            if (!Directory.Exists(root)) continue;
            Posix.ChangeOwner(root, user, group);
            foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", new EnumerationOptions
                     { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false }))
                Posix.ChangeOwner(entry.FullName, user, group);
        }
    }

    private static string NearestExisting(string path)
    {
        var dir = Path.GetFullPath(path);
        while (!Directory.Exists(dir) && Path.GetDirectoryName(dir) is { } parent) dir = parent;
        return dir;
    }
}
