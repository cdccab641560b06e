namespace CloudArchive.Core.Spool;

/// <summary>
/// The local working area of async push and prefetch: by default <c>pg_wal/.cloudarchive</c> of the data
/// directory, so it sits on the same file system as pg_wal (a spooled segment becomes %p by rename), and
/// is left out of base backups (pg_basebackup and backup-push never copy pg_wal's contents).
/// </summary>
internal static class SpoolLocation
{
    public const string DirectoryName = ".cloudarchive";

    /// <summary>The data directory a command runs in: --pgdata, else the working directory if it holds PG_VERSION.</summary>
    public static string? DataDirectory(string? pgdata)
    {
        var dir = pgdata ?? Directory.GetCurrentDirectory();
        return File.Exists(Path.Combine(dir, "PG_VERSION")) ? Path.GetFullPath(dir) : null;
    }

    /// <summary>The spool root: the configured one, else pg_wal/.cloudarchive of the data directory; null when neither is known.</summary>
    public static string? Resolve(string? configured, string? dataDirectory)
    {
        if (configured is not null) return Path.GetFullPath(configured);
        return dataDirectory is null ? null : Path.Combine(dataDirectory, "pg_wal", DirectoryName);
    }

    /// <summary>
    /// Creates a spool subdirectory (0700, like pg_wal) or says in one line why it cannot. The root and the subdirectory, when
    /// they exist, must be this user's own directories that no one else can write to (what the agent asks of its socket's
    /// directory): segments spooled there reach PostgreSQL, and a spool someone else controls could hand it theirs.
    /// </summary>
    public static string Ensure(string root, string sub)
    {
        var dir = Path.Combine(root, sub);
        try
        {
            RequireOwn(root);
            if (!Directory.Exists(dir))
                Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            RequireOwn(dir);
            return dir;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot use spool directory {dir}: {e.Message}", e);
        }
    }

    private static void RequireOwn(string dir)
    {
        var info = new DirectoryInfo(dir);
        if (!info.Exists) return;
        var why = info.LinkTarget is not null ? "is a symbolic link"
            : Native.Posix.EffectiveUserId is var me && me != 0 && Native.Posix.OwnerOf(dir) != me ? "belongs to another user"
            : (info.UnixFileMode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0 ? "can be written by other users"
            : null;
        if (why is not null)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"spool directory {dir} {why}: refusing to use it (it must be this user's, mode 0700)");
    }
}
