namespace CloudArchive.Core.Wal;

/// <summary>
/// wal-receive's local working directory: the segments in progress, written as they arrive and removed once stored. Private
/// to one receiver (0700, locked), never trusted across runs: a restarted receiver streams its segment again from the start.
/// </summary>
public sealed class ReceiveSpool : IDisposable
{
    private readonly FileStream _lock;
    private readonly bool _temporary;

    private ReceiveSpool(string directory, bool temporary)
    {
        Directory = directory;
        _temporary = temporary;
        try
        {
            _lock = new FileStream(Path.Combine(directory, "receiver.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new CloudArchiveException(ExitCode.Usage, $"another wal-receive uses {directory}: one receiver per slot and spool directory", e);
        }
        // What a killed receiver left is streamed again: its files are not read.
        foreach (var stale in System.IO.Directory.EnumerateFiles(directory).Where(f => !f.EndsWith("receiver.lock", StringComparison.Ordinal)))
            File.Delete(stale);
    }

    /// <summary>The directory.</summary>
    public string Directory { get; }

    /// <summary>receive-SLOT under --spool-dir; without one, a new private temporary directory removed at the end.</summary>
    public static ReceiveSpool Open(string? spoolRoot, string slot)
    {
        if (spoolRoot is null) return new ReceiveSpool(System.IO.Directory.CreateTempSubdirectory("cloudarchive-receive-").FullName, temporary: true);
        var dir = Path.Combine(Path.GetFullPath(spoolRoot), "receive-" + slot);
        var info = System.IO.Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (info.LinkTarget is not null)
            throw new CloudArchiveException(ExitCode.Usage, $"{dir} is a symbolic link: the receiver's spool must be a directory of its own");
        if ((info.UnixFileMode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            throw new CloudArchiveException(ExitCode.Usage, $"{dir} is writable by others: the receiver's spool must be private (chmod 700)");
        return new ReceiveSpool(dir, temporary: false);
    }

    /// <summary>Unlocks; a temporary spool is removed.</summary>
    public void Dispose()
    {
        _lock.Dispose();
        if (_temporary) System.IO.Directory.Delete(Directory, recursive: true);
    }
}
