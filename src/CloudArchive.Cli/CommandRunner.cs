using System.CommandLine;
using CloudArchive.Core;
using CloudArchive.Core.Storage;
using CloudArchive.Storage;

namespace CloudArchive.Cli;

/// <summary>What every command action gets: resolved settings and a way to open the store.</summary>
public sealed class CommandContext(ParseResult parse, Settings settings)
{
    public ParseResult Parse { get; } = parse;
    public Settings Settings { get; } = settings;

    public IObjectStore OpenStore()
    {
        var seconds = Settings.GetInt(Settings.RetryTimeout, "CLOUDARCHIVE_RETRY_TIMEOUT", 60, 0, 86400);
        var retry = RetryPolicy.Default with { Budget = TimeSpan.FromSeconds(seconds) };
        return StoreFactory.Open(Settings.RequireStore(), retry, Settings.Lookup);
    }
}

/// <summary>
/// Turns a command's outcome into an exit code: a <see cref="CloudArchiveException"/> becomes its one-line
/// message and code; anything else is an internal error. Stack traces only with --verbose.
/// </summary>
public static class CommandRunner
{
    public static void SetAction(Command command, Func<CommandContext, CancellationToken, Task<ExitCode>> action,
        Func<CommandContext, CloudArchiveException, ExitCode>? mapFailure = null)
    {
        command.SetAction(async (parse, ct) =>
        {
            var verbose = parse.GetValue(Settings.Verbose);
            CommandContext? context = null;
            try
            {
                var settings = Settings.Load(parse);
                Log.Level = settings.GetLogLevel();
                context = new CommandContext(parse, settings);
                return (int)await action(context, ct).ConfigureAwait(false);
            }
            catch (CloudArchiveException e)
            {
                Log.Error(OneLine(e.Message));
                if (verbose) Log.Error(e.ToString());
                return (int)(context is not null && mapFailure is not null ? mapFailure(context, e) : e.ExitCode);
            }
            catch (OperationCanceledException)
            {
                Log.Error("interrupted");
                return 130;
            }
            catch (Exception e)
            {
                Log.Error($"internal error: {OneLine(e.Message)} (run with --verbose for details)");
                if (verbose) Log.Error(e.ToString());
                var fake = new CloudArchiveException(ExitCode.Internal, e.Message, e);
                return (int)(context is not null && mapFailure is not null ? mapFailure(context, fake) : ExitCode.Internal);
            }
        });
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
