using System.Diagnostics;
using System.Globalization;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Wal;

namespace CloudArchive.Cli;

/// <summary>
/// Starts a background worker as this executable's hidden worker command (wal-push-worker, wal-prefetch-worker),
/// with the settings this command line was given. It gets its own session (setsid): PostgreSQL signals the
/// archiver's whole process group at shutdown, and the worker must neither die with it halfway nor keep
/// PostgreSQL's log pipe or a caller's stdout open. Its output is appended to a log file in the spool.
/// </summary>
internal sealed class Background(CommandContext ctx) : IWorkerStarter
{
    /// <summary>The hidden command of the async push worker.</summary>
    public const string PushWorkerCommand = "wal-push-worker";

    /// <summary>The hidden command of the prefetch worker.</summary>
    public const string PrefetchWorkerCommand = "wal-prefetch-worker";

    /// <summary>The hidden command of the per-cluster agent.</summary>
    public const string AgentCommand = "wal-agent";

    /// <inheritdoc />
    public void Start(BackgroundWorker worker)
    {
        List<string> args = worker switch
        {
            PushWorker p => [PushWorkerCommand, p.WalPath],
            PrefetchWorker p =>
            [
                PrefetchWorkerCommand, p.After.Name, "--segment-size", p.SegmentSize.ToString(CultureInfo.InvariantCulture),
                "--prefetch", p.Count.ToString(CultureInfo.InvariantCulture), "--spool-dir", p.SpoolRoot,
                .. p.DataDirectory is { } d ? (string[])["--pgdata", d] : [],
            ],
            AgentWorker a => [AgentCommand, "--spool-dir", a.SpoolRoot],
            _ => throw new ArgumentException($"unknown worker {worker}", nameof(worker)),
        };
        // The settings this command line was given, as far as the worker takes them; the environment is inherited.
        var command = args[0];
        if (ctx.Settings.ConfigPath is { } config) args.AddRange(["--config", config]);
        Setting[] passedAbove = worker switch
        {
            PrefetchWorker => [SettingsTable.Config, SettingsTable.SpoolDir, SettingsTable.Prefetch],
            AgentWorker => [SettingsTable.Config, SettingsTable.SpoolDir],
            _ => [SettingsTable.Config],
        };
        args.AddRange(ctx.Settings.GivenFlags(SettingsTable.All.Where(s =>
            !passedAbove.Contains(s) && (s.Commands.Count == 0 || s.Commands.Contains(command)))));
        Run(args, worker.LogPath);
    }

    private static void Run(IReadOnlyList<string> args, string logPath)
    {
        var exe = Environment.ProcessPath ?? throw new CloudArchiveException(ExitCode.Internal, "cannot find my own executable to start a background worker");
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
