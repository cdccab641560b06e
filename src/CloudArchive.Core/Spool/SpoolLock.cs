namespace CloudArchive.Core.Spool;

/// <summary>
/// An exclusive, non-blocking lock on a file in the spool (flock through .NET's FileShare.None); the
/// kernel drops it when the holder exits, however it exits, so a killed worker never blocks the next one.
/// </summary>
internal sealed class SpoolLock : IDisposable
{
    private readonly FileStream _file;

    private SpoolLock(FileStream file) => _file = file;

    /// <summary>The lock, or null when another process holds it.</summary>
    public static SpoolLock? TryAcquire(string path)
    {
        try
        {
            return new SpoolLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether some process holds the lock right now.</summary>
    public static bool IsHeld(string path)
    {
        using var probe = TryAcquire(path);
        return probe is null;
    }

    public void Dispose() => _file.Dispose();
}
