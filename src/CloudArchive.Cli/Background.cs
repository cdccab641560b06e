using System.Diagnostics;
using CloudArchive.Core;

namespace CloudArchive.Cli;

/// <summary>
/// Starts this executable again as a detached background worker (async push, prefetch). It gets its own
/// session (setsid): PostgreSQL signals the archiver's whole process group at shutdown, and the worker
/// must neither die with it halfway nor keep PostgreSQL's log pipe or a caller's stdout open.
/// Its output is appended to a log file in the spool.
/// </summary>
public static class Background
{
    public static void Start(IReadOnlyList<string> args, string logPath)
    {
        var exe = Environment.ProcessPath ?? throw new CloudArchiveException(ExitCode.Internal, "cannot find my own executable to start a background worker");
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("exec setsid \"$0\" \"$@\" </dev/null >>\"$CLOUDARCHIVE_WORKER_LOG\" 2>&1 &");
        start.ArgumentList.Add(exe);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["CLOUDARCHIVE_WORKER_LOG"] = logPath;
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
