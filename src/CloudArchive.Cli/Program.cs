using CloudArchive.Cli;
using CloudArchive.Core.Wal;

// The drill's server is started through this: it confines itself and becomes pg_ctl before anything else runs here.
if (args.Length > 0 && args[0] == CloudArchive.Native.Sandbox.Command)
{
    Log.Error(CloudArchive.Native.Sandbox.Launch(args));
    return (int)ExitCode.PostgresFailed;
}

var root = new RootCommand("cloudarchive: keeps a PostgreSQL cluster recoverable from object storage. Example: cloudarchive status --store " +
    "s3://bucket/prefix; cloudarchive COMMAND --help gives each command's options and an example");
foreach (var option in Settings.GlobalOptions) root.Add(option);
foreach (var command in WalCommands.Build()) root.Add(command);
foreach (var command in ReceiveCommands.Build()) root.Add(command);
foreach (var command in StoreCommands.Build()) root.Add(command);
foreach (var command in BackupCommands.Build()) root.Add(command);
foreach (var command in OperationsCommands.Build()) root.Add(command);
foreach (var command in DumpCommands.Build()) root.Add(command);
foreach (var command in DrillCommands.Build()) root.Add(command);

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // One line, the documented usage code; the full help is one --help away. A mistyped command is named, with the nearest one.
    var first = parse.UnmatchedTokens.FirstOrDefault(a => !a.StartsWith('-')) ?? args.FirstOrDefault(a => !a.StartsWith('-'));
    var commands = root.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
    var renamed = SettingsTable.Renamed.FirstOrDefault(r => args.Any(a => a == r.Flag || a.StartsWith(r.Flag + "=", StringComparison.Ordinal)));
    if (renamed is not null)
        Log.Error($"{renamed.Refusal} (see cloudarchive --help)");
    else if (parse.CommandResult.Command == root && first is not null && !commands.Contains(first))
        Log.Error($"unknown command '{first}'{(Suggest.Nearest(first, commands) is { } near ? $" (did you mean '{near}'?)" : "")} (see cloudarchive --help)");
    else
    {
        // The parser's message (a value not among an option's allowed ones spans lines), on one line, naming the option.
        var error = parse.Errors[0];
        var option = (error.SymbolResult as System.CommandLine.Parsing.OptionResult)?.Option.Name
            ?? ((error.SymbolResult as System.CommandLine.Parsing.ArgumentResult)?.Parent as System.CommandLine.Parsing.OptionResult)?.Option.Name;
        var message = string.Join(' ', error.Message.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Log.Error($"{(option is null ? "" : option + ": ")}{message} (see cloudarchive --help)");
    }
    // restore_command may put global options before the subcommand: ask the parser which command it is, not args[0].
    var isWalFetch = parse.CommandResult.Command.Name == "wal-fetch" || args.Contains("wal-fetch", StringComparer.Ordinal);
    return (int)(isWalFetch ? RestoreCommandPolicy.For(ExitCode.Usage, null) : ExitCode.Usage);
}
var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
// A drill handles SIGTERM and Ctrl-C itself: its clean-up (stopping a server, removing a restored cluster) may take longer
// than the 2 s System.CommandLine grants before it ends the process.
if (parse.CommandResult.Command.Name is "drill" or "wal-receive") invocation.ProcessTerminationTimeout = null;
return await parse.InvokeAsync(invocation).ConfigureAwait(false);
