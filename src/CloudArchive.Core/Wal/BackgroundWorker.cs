namespace CloudArchive.Core.Wal;

/// <summary>
/// A background worker a WAL use case wants running: the same use case, started detached in its own process.
/// How it is started (which executable, which arguments) is the caller's business: see <see cref="IWorkerStarter"/>.
/// </summary>
/// <param name="LogPath">Where the worker's output is appended (in the spool).</param>
public abstract record BackgroundWorker(string LogPath);

/// <summary>The async push worker of the pg_wal that holds <paramref name="WalPath"/>.</summary>
public sealed record PushWorker(string WalPath, string LogPath) : BackgroundWorker(LogPath);

/// <summary>The per-cluster agent of wal-push and wal-fetch --agent, for the spool at <paramref name="SpoolRoot"/>.</summary>
public sealed record AgentWorker(string SpoolRoot, string LogPath) : BackgroundWorker(LogPath);

/// <summary>The prefetch worker: fetches up to <paramref name="Count"/> segments after <paramref name="After"/> into the spool.</summary>
public sealed record PrefetchWorker(WalFileName After, long SegmentSize, int Count, string SpoolRoot, string? DataDirectory, string LogPath)
    : BackgroundWorker(LogPath);

/// <summary>Starts a worker detached from the caller (its own session: PostgreSQL's signals to the archiver must not reach it).</summary>
public interface IWorkerStarter
{
    /// <summary>Starts <paramref name="worker"/> and returns at once; throws <see cref="CloudArchiveException"/> when it cannot.</summary>
    void Start(BackgroundWorker worker);
}
