namespace CloudArchive.Core.Storage;

/// <summary>The store could not be used (unreachable, refused access, misconfigured). Transient ones may be retried.</summary>
public sealed class StoreUnavailableException(string message, bool transient, Exception? inner = null)
    : CloudArchiveException(ExitCode.StoreUnavailable, message, inner)
{
    /// <summary>Whether retrying may succeed (a timeout, a 503), unlike refused credentials or a missing bucket.</summary>
    public bool Transient { get; } = transient;

    /// <summary>
    /// The store was unreachable: a transient fault, now or retried until the budget ran out. Refused credentials, a missing
    /// bucket or a directory that is not a store are not outages: nothing is dropped for them (--max-queue-bytes).
    /// </summary>
    public bool Outage => Transient || InnerException is StoreUnavailableException { Transient: true };
}
