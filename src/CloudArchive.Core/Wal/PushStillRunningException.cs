namespace CloudArchive.Core.Wal;

/// <summary>The worker has not finished a segment in time: it may still store it, so the segment is neither stored nor lost (exit 4).</summary>
public sealed class PushStillRunningException(string message) : CloudArchiveException(ExitCode.StoreUnavailable, message);
