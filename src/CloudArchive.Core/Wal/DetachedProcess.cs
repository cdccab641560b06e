using System.Diagnostics;

namespace CloudArchive.Core.Wal;

/// <summary>
/// A background worker's process. It gets its own session (setsid): PostgreSQL signals the archiver's whole process
/// group at shutdown, and the worker must neither die with it halfway nor keep PostgreSQL's log pipe or a caller's
/// stdout open. Its output is appended to a log file in the spool.
/// </summary>
public static class DetachedProcess
{
    /// <summary>Starts <paramref name="exe"/> with <paramref name="args"/>, detached, its output appended to <paramref name="logPath"/>.</summary>
    public static void Start(string exe, IReadOnlyList<string> args, string logPath)
    {
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        // $1 is the log; the worker's own arguments follow.
        start.ArgumentList.Add("log=$1; shift; exec setsid \"$0\" \"$@\" </dev/null >>\"$log\" 2>&1 &");
        start.ArgumentList.Add(exe);
        start.ArgumentList.Add(logPath);
        foreach (var a in args) start.ArgumentList.Add(a);
        try
        {
            using var shell = Process.Start(start) ?? throw new CloudArchiveException(ExitCode.Internal, "could not start /bin/sh for a background worker");
            shell.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CloudArchiveException(ExitCode.Internal, $"could not start a background worker: {e.Message}", e);
        }
    }
}
