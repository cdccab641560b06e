namespace CloudArchive.Core.Pipeline;

/// <summary>A stored object whose bytes do not match what was recorded when it was written.</summary>
public sealed class CorruptObjectException(string message, Exception? inner = null)
    : CloudArchiveException(ExitCode.Corrupt, message, inner);
