namespace CloudArchive.Native;

/// <summary>Writing the decoded content failed (a full disk, an I/O error), as opposed to reading the stored object.</summary>
public sealed class OutputWriteException(IOException inner) : IOException(inner.Message, inner)
{
    /// <summary>The system's words for the failure ("No space left on device"), without the temp file's path.</summary>
    public string Reason { get; } = inner.HResult > 0
        ? System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(inner.HResult) // .NET on Unix: the errno
        : inner.Message;
}
