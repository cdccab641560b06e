namespace CloudArchive.Core;

/// <summary>An error a user can cause or fix; the CLI prints its message as one line and exits with its code.</summary>
public class CloudArchiveException(ExitCode exitCode, string message, Exception? inner = null)
    : Exception(message, inner)
{
    /// <summary>The exit code the CLI ends with.</summary>
    public ExitCode ExitCode { get; } = exitCode;
}
