using CloudArchive.Core.Wal;

namespace CloudArchive.Cli;

/// <summary>
/// Starts a background worker as this executable's hidden worker command (wal-push-worker, wal-prefetch-worker,
/// wal-agent), with the settings this command line was given, as a <see cref="DetachedProcess"/>.
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
        DetachedProcess.Start(Environment.ProcessPath ?? throw new CloudArchiveException(ExitCode.Internal, "cannot find my own executable to start a background worker"),
            args, worker.LogPath);
    }
}
