namespace CloudArchive.Core.Pipeline;

/// <summary>The display of one pass over a stream of bytes: each chunk is reported as it flows; disposing ends the display.</summary>
public interface IProgressPass : IProgress<long>, IDisposable;

/// <summary>
/// Starts showing a pass named <paramref name="label"/> over <paramref name="total"/> bytes (0: not known in advance);
/// null when nobody watches (no terminal).
/// </summary>
public delegate IProgressPass? StartProgress(string label, long total);
