using System.Formats.Tar;
using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Postgres;

/// <summary>
/// backup-push --remote's source: pg_basebackup streams the data directory over the replication protocol as one tar to
/// stdout, run like every other client program (<see cref="PgProgram"/>: its environment without the store's secrets,
/// its failure in its own words); the tar is re-bundled by the same <see cref="BundleWriter"/> as a local backup, with
/// the same checksums and block maps, and <see cref="BackupPusher"/> writes the same record.
/// </summary>
internal sealed class RemoteBackup(IObjectStore store, BackupPushOptions options)
{
    /// <summary>The backup's bundles, its backup_label and where it stopped, once pg_basebackup has exited 0.</summary>
    public async Task<(IReadOnlyList<WrittenBundle> Bundles, string Label, Lsn StopLsn)> TakeAsync(string id, ClusterFacts facts, CancellationToken ct)
    {
        var pgBasebackup = await PgProgram.FindAsync(ClientNeed.ForServer("pg_basebackup", "back up", facts.ServerVersionNum), options.PgBin, ct)
            .ConfigureAwait(false);
        var args = new List<string> { "-D", "-", "-F", "t", "-X", "none", "-c", "fast", "-v", "--no-manifest", "-l", "cloudarchive " + id };
        // Every setting of --dbname (TLS ones too) as pg_basebackup's connection string, the password only in its environment;
        // libpq's variables it inherits, as it would from a shell.
        var connection = LibpqSettings.ForChild(options.DbName);
        if (connection.ConnectionString is { } conninfo) args.AddRange(["-d", conninfo]);
        var env = new Dictionary<string, string>(connection.Environment()) { ["PGAPPNAME"] = "cloudarchive" };

        // Disposed (killed) on every way out: a failed store write must not leave pg_basebackup holding a backup open on the server.
        using var child = PgProgram.Start(pgBasebackup.Path, args, writeStdin: false, env);
        var writer = new BundleWriter(store, id, options.CompressionLevel, facts.BlockSize, progress: options.Progress);
        var bundles = new List<WrittenBundle>();
        string? label = null;
        try
        {
            await using var tarIn = new TarReader(child.StandardOutput, leaveOpen: true);
            var next = await tarIn.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
            while (next is not null)
                bundles.Add(await writer.WriteAsync(bundles.Count, async bundle =>
                {
                    long size = 0;
                    while (next is not null && (size == 0 || size < options.BundleBytes))
                    {
                        var name = next.Name.TrimEnd('/');
                        if (next.EntryType == TarEntryType.Directory)
                            await bundle.AddDirectoryAsync(name, (int)next.Mode, ct).ConfigureAwait(false);
                        else if (name == "backup_label" && next.DataStream is { } labelData)
                            label = await new StreamReader(labelData).ReadToEndAsync(ct).ConfigureAwait(false);
                        else if (next.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
                        {
                            await bundle.AddWholeAsync(name, (int)next.Mode, next.DataStream ?? Stream.Null, next.Length, ct).ConfigureAwait(false);
                            size += next.Length + 512;
                        }
                        next = await tarIn.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
                    }
                }, ct).ConfigureAwait(false));
            await child.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            // A tar cut short is usually pg_basebackup failing: give it a moment to exit and say why in its own words.
            using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
                try { await child.WaitAsync(grace.Token).ConfigureAwait(false); } catch (OperationCanceledException) { /* killed: ours is the error */ }
            if (child.ExitStatus == 0 || child.KilledByUs) throw;
        }
        if (child.ExitStatus != 0) throw child.Failure();
        if (label is null) throw new CloudArchiveException(ExitCode.Internal, "pg_basebackup's tar had no backup_label");
        // pg_basebackup says where the backup ended; older ones (or a quiet -v) leave it to the primary's backup history file.
        var stopLsn = BackupLabel.EndPointOf(child.LastMessages)
            ?? await StopLsnFromBackupHistoryAsync(BackupLabel.StartTimeline(label), BackupLabel.StartLsn(label), facts.WalSegmentSize, ct)
                .ConfigureAwait(false);
        return (bundles, label, stopLsn);
    }

    /// <summary>
    /// pg_basebackup writing to stdout does not report where the backup ended; the server's backup history
    /// file (archived through wal-push, named after the start LSN) does. Waits for it a bounded time.
    /// </summary>
    private async Task<Lsn> StopLsnFromBackupHistoryAsync(uint timeline, Lsn startLsn, long segSize, CancellationToken ct)
    {
        var segment = WalFileName.ForSegment(timeline, startLsn.Value / (ulong)segSize, segSize);
        var name = WalFileName.Parse($"{segment.Name}.{startLsn.Value % (ulong)segSize:X8}.backup");
        var wal = new WalArchive(store, 0);
        // The same wait as for the backup's WAL (--wal-timeout), and the same answer when it runs out.
        var deadline = DateTime.UtcNow + options.WalWait;
        while (true)
        {
            if (await wal.ReadTextFileAsync(name, ct).ConfigureAwait(false) is { } text)
                return BackupLabel.StopLsn(text);
            if (DateTime.UtcNow > deadline)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath,
                    $"the backup history file {name} did not reach {store.Description} within {options.WalWait.TotalSeconds:0} s (--wal-timeout): " +
                    "is archive_command = 'cloudarchive wal-push %p' pointed at this store? No record was written");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }
}
