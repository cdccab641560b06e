using System.CommandLine;
using CloudArchive.Cli;
using CloudArchive.Core;

var root = new RootCommand("cloudarchive: keeps a PostgreSQL cluster recoverable from object storage");
foreach (var option in Settings.GlobalOptions) root.Add(option);
foreach (var command in WalCommands.Build()) root.Add(command);
foreach (var command in StoreCommands.Build()) root.Add(command);
foreach (var command in BackupCommands.Build()) root.Add(command);
foreach (var command in OperationsCommands.Build()) root.Add(command);
foreach (var command in DumpCommands.Build()) root.Add(command);

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // One line, the documented usage code; the full help is one --help away.
    Log.Error($"{parse.Errors[0].Message} (see cloudarchive --help)");
    return (int)(args.FirstOrDefault() == "wal-fetch" ? RestoreCommandPolicy.For(ExitCode.Usage, null) : ExitCode.Usage);
}
return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
