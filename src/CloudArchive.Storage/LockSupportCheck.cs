using CloudArchive.Core;
using CloudArchive.Core.Configuration;

namespace CloudArchive.Storage;

/// <summary>
/// Before the first locked write of a process: asks once whether the bucket or container can hold locks (asked again only
/// after a failure), and refuses every write when it cannot. Ceph RGW takes lock headers on a bucket without Object Lock, and
/// Azurite immutability headers, and keep no lock: an archive must never believe itself locked and not be.
/// </summary>
/// <param name="supported">Asks the store; its faults are the backend's to translate.</param>
/// <param name="missing">What is missing and how to get it, for the error: "bucket 'b' has no Object Lock (...)".</param>
internal sealed class LockSupportCheck(Func<CancellationToken, Task<bool>> supported, string missing)
{
    private readonly Lock _gate = new();
    private Task? _checked;

    /// <summary>Completes when the store can hold locks; a usage error (exit 2) naming <paramref name="key"/> when it cannot.</summary>
    public Task EnsureAsync(string key, CancellationToken ct)
    {
        lock (_gate) return _checked is { IsFaulted: false, IsCanceled: false } t ? t : _checked = CheckAsync(key, ct);
    }

    private async Task CheckAsync(string key, CancellationToken ct)
    {
        if (!await supported(ct).ConfigureAwait(false))
            throw new CloudArchiveException(ExitCode.Usage, $"writing {key}: {SettingsTable.LockDays.Flag} is set, but {missing}; nothing was written unlocked");
    }
}
