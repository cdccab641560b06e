namespace CloudArchive.Core.Storage;

/// <summary>Implemented by backends whose large (multi-request) writes can be probed for the write condition.</summary>
public interface ILargeWriteConditionProbe
{
    /// <summary>
    /// Completes a multi-request write onto an existing <paramref name="key"/> with the no-overwrite condition;
    /// true when the store refused it, false when it replaced the object.
    /// </summary>
    Task<bool> LargeWriteRefusedAsync(string key, CancellationToken ct);
}
