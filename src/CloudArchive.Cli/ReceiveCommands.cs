using System.Runtime.InteropServices;
using CloudArchive.Core.Wal;
using CloudArchive.Postgres;

namespace CloudArchive.Cli;

/// <summary>wal-receive: WAL streamed from a replication slot into the store as it is written.</summary>
internal static class ReceiveCommands
{
    private static readonly Option<string> Slot = new("--slot") { Description = "Physical replication slot to stream from (default cloudarchive)" };
    private static readonly Option<bool> CreateSlot = new("--create-slot") { Description = "Create the slot when the server has none of that name" };
    private static readonly Option<bool> Synchronous = new("--synchronous") { Description = "Store each received byte at once and report it flushed " +
        "only once it is in the store: list the application name in synchronous_standby_names for commits that wait for the store" };
    private static readonly Option<string> ApplicationName = new("--application-name") { Description = "Name the server sees (synchronous_standby_names; " +
        "default cloudarchive)" };
    private static readonly Option<int?> FlushInterval = new("--flush-interval") { Description = "Seconds received WAL may wait before it is stored " +
        "(not --synchronous; default 10, 1-3600)" };
    private static readonly Option<int?> FlushSize = new("--flush-size") { Description = "MiB of received WAL that are stored at once, whatever the interval " +
        "(default 4, 1-1024)" };

    public static IEnumerable<Command> Build()
    {
        var receive = new Command("wal-receive", "Stream WAL from a physical replication slot into the store as it is written, for zero or " +
            "seconds of data loss; runs until stopped (SIGTERM stores what arrived). Example: cloudarchive wal-receive --dbname 'host=db1 " +
            "user=replicator' --create-slot --synchronous")
            { BackupCommands.DbName, Slot, CreateSlot, Synchronous, ApplicationName, FlushInterval, FlushSize };
        Settings.AddOptions(receive);
        CommandRunner.SetAction(receive, async (ctx, ct) =>
        {
            var interval = ctx.Parse.GetValue(FlushInterval) ?? 10;
            if (interval is < 1 or > 3600) throw new CloudArchiveException(ExitCode.Usage, "--flush-interval must be 1 to 3600 seconds");
            var size = ctx.Parse.GetValue(FlushSize) ?? 4;
            if (size is < 1 or > 1024) throw new CloudArchiveException(ExitCode.Usage, "--flush-size must be 1 to 1024 MiB");
            var slot = ctx.Parse.GetValue(Slot) ?? "cloudarchive";
            if (!WalReceiver.IsValidSlotName(slot))
                throw new CloudArchiveException(ExitCode.Usage, $"--slot '{slot}' is not a slot name (lower-case letters, digits and _, at most 63)");
            var application = ctx.Parse.GetValue(ApplicationName) ?? "cloudarchive";
            if (application.Length is 0 or > 63 || application.Any(c => c < ' ' || c > '~'))
                throw new CloudArchiveException(ExitCode.Usage, "--application-name must be 1 to 63 printable ASCII characters");
            Log.Timestamps = true;
            // SIGTERM and Ctrl-C stop the stream; what arrived is stored before the process ends.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            using var spool = ReceiveSpool.Open(ctx.Settings.Get(SettingsTable.SpoolDir), slot);
            var receiver = new WalReceiver(systemId => ctx.OpenStore(systemId), new WalReceiverOptions
            {
                DbName = ctx.Parse.GetValue(BackupCommands.DbName),
                Slot = slot,
                CreateSlot = ctx.Parse.GetValue(CreateSlot),
                Synchronous = ctx.Parse.GetValue(Synchronous),
                ApplicationName = application,
                FlushInterval = TimeSpan.FromSeconds(interval),
                FlushBytes = (long)size << 20,
                SpoolDirectory = spool.Directory,
                CompressionLevel = ctx.Settings.GetInt(SettingsTable.CompressLevel),
                PgBin = ctx.Settings.Get(SettingsTable.PgBin),
            }) { Say = line => Log.Notice(line) };
            await receiver.RunAsync(stop.Token).ConfigureAwait(false);
            Log.Notice($"wal-receive: stopped; the store holds the WAL up to {(receiver.Stored is { } lsn ? lsn.ToString() : "where it did before (nothing stored by this run)")}");
            return ExitCode.Ok;
        });
        return [receive];
    }
}
