using System.Diagnostics;
using System.Text.Json;
using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>How backup-push reads, compresses and bundles the data directory.</summary>
/// <param name="PgData">The data directory as this host sees it; null: the server's data_directory setting.</param>
/// <param name="Jobs">Bundles compressed and uploaded at once.</param>
/// <param name="BundleBytes">Uncompressed size at which a tar bundle is closed and the next one begun.</param>
/// <param name="Progress">The size of each file as it goes into a bundle.</param>
public sealed record BackupPushOptions(string? PgData, int CompressionLevel, int Jobs, long BundleBytes = 64L * 1024 * 1024, IProgress<long>? Progress = null)
{
    /// <summary>full, diff or incr (<see cref="BackupKinds"/>).</summary>
    public string Type { get; init; } = BackupKinds.Full;

    /// <summary>How long the finished backup waits for its WAL (start to stop segment) to be in the store's manifest.</summary>
    public TimeSpan WalWait { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Directory of pg_basebackup (CLOUDARCHIVE_PG_BIN); null: found.</summary>
    public string? PgBin { get; init; }

    /// <summary>libpq's --dbname as given (a name, conninfo or URI), for pg_basebackup (--remote); null: libpq's defaults.</summary>
    public string? DbName { get; init; }

    /// <summary>
    /// A backup of a standby: the primary to ask for a WAL switch (a conninfo or URI), so the backup's last segment is
    /// archived at once; null: the standby's own primary_conninfo.
    /// </summary>
    public string? PrimaryDbName { get; init; }

    /// <summary>
    /// An incremental on PostgreSQL 17+ asks the server's WAL summaries which blocks changed and reads only those
    /// (<see cref="WalSummaries"/>); false (--no-wal-summaries): every file is read and compared, as on older majors.
    /// </summary>
    public bool WalSummaries { get; init; } = true;
}

/// <summary>
/// backup-push: a non-exclusive base backup of a running cluster. One session holds the backup open
/// from pg_backup_start to pg_backup_stop; meanwhile the data directory and tablespaces are streamed
/// as zstd-compressed tar bundles (several at once) with conditional puts. The manifest record,
/// written last, is what makes the backup exist.
/// </summary>
public sealed class BackupPusher(IObjectStore store, NpgsqlDataSource db, BackupPushOptions options)
{
    /// <summary>
    /// Takes the backup from this host, which must see the data directory (and tablespaces), and returns its
    /// record once the WAL from its start to its stop segment is archived.
    /// </summary>
    public async Task<BackupRecord> PushAsync(CancellationToken ct)
    {
        await using var conn = await OpenAsync(ct).ConfigureAwait(false);
        var facts = await ClusterFacts.ReadAsync(conn, ct).ConfigureAwait(false);
        Stage("connect");
        RequireArchiving(facts);
        var pgdata = options.PgData ?? facts.DataDirectory;
        if (!File.Exists(Path.Combine(pgdata, "PG_VERSION")))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"{pgdata} is not a readable data directory (no PG_VERSION); pass --pgdata");

        // The scan that counts follows pg_backup_start (a file created before its checkpoint would be missed); one alongside
        // the store's reads and the checkpoint brings the directories' inodes into the kernel's cache, so that scan is quick.
        var warmUp = Task.Run(() => WarmUp(pgdata, facts.Tablespaces), ct);
        var id = StoreLayout.NewId(DateTimeOffset.UtcNow);
        var startTime = DateTimeOffset.UtcNow;
        // The store's records are read while the server checkpoints for the start (on a store of 50 backups, reading them took
        // 0.3-0.4 s); a backup that ended after this one began is not one to build on.
        var choosing = IncrementalReference.ChooseAsync(store, options.Type, facts.SystemIdentifier, facts.ServerVersionNum, facts.BlockSize, ct,
            endedBy: startTime);
        var sql = BackupFunctions.For(facts.ServerVersionNum);
        Lsn startLsn;
        try
        {
            await using var cmd = new NpgsqlCommand(sql.Start, conn);
            cmd.Parameters.AddWithValue("cloudarchive " + id);
            startLsn = Lsn.Parse((string)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!);
            Stage("pg_backup_start");
        }
        catch
        {
            // The start's failure is the one to report; the choice's own is dropped with it.
            await choosing.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)
                .ConfigureAwait(false);
            throw;
        }
        var reference = await choosing.ConfigureAwait(false);
        Stage("reference");
        Log.Info($"backup {id}: {(reference is null ? "full" : $"{options.Type} on {reference.Head.Id}")} backup start on " +
            PgConnectionInfo.Describe(db));

        var clock = Stopwatch.StartNew();
        await warmUp.ConfigureAwait(false);
        var entries = DataDirectoryScanner.Scan(pgdata, facts.Tablespaces);
        Stage("scan");
        var summaries = reference is null ? null : !options.WalSummaries
            ? Declined(reference.Head)
            : await WalSummaries.ReadAsync(db, facts, reference.Head, startLsn, entries.Where(e => !e.IsDirectory).Select(e => e.Path), ct)
                .ConfigureAwait(false);
        if (summaries is not null) Stage("WAL summaries");
        var bundles = Partition(entries);
        var writer = new BundleWriter(store, id, options.CompressionLevel, facts.BlockSize, reference, options.Progress, summaries);
        var results = new WrittenBundle[bundles.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, bundles.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Jobs), CancellationToken = ct },
            async (i, token) => results[i] = await writer.WriteAsync(i, bundle => AddAsync(bundle, bundles[i], token), token).ConfigureAwait(false))
            .ConfigureAwait(false);
        Stage("files");
        if (reference is not null)
            Log.Info(summaries is null
                ? $"backup {id}: 0 relation files read by WAL summary, {entries.Count(e => !e.IsDirectory)} files read whole"
                : $"backup {id}: {summaries.FilesBySummary} relation files read by WAL summary ({summaries.BlocksRead} blocks), " +
                  $"{summaries.FilesReadWhole} files read whole");

        string stopLsnText, label, spcmap;
        await using (var stop = new NpgsqlCommand(sql.Stop, conn))
        await using (var reader = await stop.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            await reader.ReadAsync(ct).ConfigureAwait(false);
            stopLsnText = reader.GetString(0);
            label = reader.GetString(1);
            spcmap = reader.IsDBNull(2) ? "" : reader.GetString(2);
        }
        Stage("pg_backup_stop");
        var record = await CommitAsync(id, facts, startTime, startLsn, Lsn.Parse(stopLsnText), label, spcmap, results, clock, ct, reference?.Head)
            .ConfigureAwait(false);
        Log.Info($"backup {id}: seconds by stage: {string.Join(", ", _stages)}");
        return record;
    }

    // Where a backup's time went, for --log-level info (the reference is chosen while pg_backup_start runs: its line is
    // the wait for it after the start).
    private readonly Stopwatch _stageClock = Stopwatch.StartNew();
    private readonly List<string> _stages = [];

    private void Stage(string name)
    {
        _stages.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{name} {_stageClock.Elapsed.TotalSeconds:0.000}"));
        _stageClock.Restart();
    }

    /// <summary>A scan whose result is dropped: only its effect on the kernel's caches is wanted, and its errors are the real scan's to report.</summary>
    private static void WarmUp(string pgdata, IReadOnlyList<BackupTablespace> tablespaces)
    {
        try
        {
            _ = DataDirectoryScanner.Scan(pgdata, tablespaces);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CloudArchiveException)
        {
            Log.Debug($"scanning ahead of the backup start: {e.Message}");
        }
    }

    private static WalSummaryPlan? Declined(BackupRecord reference)
    {
        Log.Info($"WAL summaries not used (--no-wal-summaries): every file is read and compared with {reference.Id}");
        return null;
    }

    private async Task<BackupRecord> CommitAsync(string id, ClusterFacts facts, DateTimeOffset startTime, Lsn startLsn, Lsn stopLsn,
        string label, string spcmap, IReadOnlyList<WrittenBundle> results, Stopwatch clock, CancellationToken ct,
        BackupRecord? reference = null)
    {
        var timeline = BackupLabel.StartTimeline(label);
        var segSize = facts.WalSegmentSize;
        var record = new BackupRecord
        {
            Id = id,
            SystemIdentifier = facts.SystemIdentifier,
            ServerVersionNum = facts.ServerVersionNum,
            Timeline = timeline,
            StartLsn = startLsn.ToString(),
            StopLsn = stopLsn.ToString(),
            StartWalFile = WalFileName.ForSegment(timeline, startLsn.Value / (ulong)segSize, segSize).Name,
            // The stop LSN may sit exactly on a segment boundary; the record ending the backup is before it.
            StopWalFile = WalFileName.ForSegment(timeline, (stopLsn.Value - 1) / (ulong)segSize, segSize).Name,
            StartTime = startTime,
            StopTime = DateTimeOffset.UtcNow,
            WalSegmentSize = segSize,
            BackupLabel = label,
            TablespaceMap = spcmap.Length == 0 ? null : spcmap,
            Compression = "zstd",
            Size = results.Sum(r => r.Bundle.Size),
            StoredSize = results.Sum(r => r.Bundle.StoredSize),
            Bundles = results.Select(r => r.Bundle).ToList(),
            Entries = results.SelectMany(r => r.Entries).ToList(),
            Tablespaces = facts.Tablespaces.ToList(),
            Databases = facts.Databases.ToList(),
            TimeZone = facts.TimeZone,
            Node = facts.Node,
            Type = reference is null ? BackupKinds.Full : options.Type,
            Reference = reference?.Id,
            BlockSize = facts.BlockSize,
        };
        await RequireWalAsync(record, facts, ct).ConfigureAwait(false);
        Stage("WAL archived");
        using var json = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.BackupRecord));
        if (await store.PutIfAbsentAsync(StoreLayout.BackupRecordKey(id), json, new ObjectMetadata(), ct).ConfigureAwait(false) is PutOutcome.AlreadyExists)
            throw new CloudArchiveException(ExitCode.RefusedOverwrite, $"backup {id} already has a manifest record in {store.Description}");
        Log.Info($"backup {id}: {record.Kind}, {record.Entries.Count} entries, {record.Size / 1048576.0:0.0} MiB -> {record.StoredSize / 1048576.0:0.0} MiB " +
            $"in {clock.Elapsed.TotalSeconds:0.0} s");
        return record;
    }

    /// <summary>
    /// A backup is listed only when it can be restored from this store: every WAL segment from its start to its stop
    /// must be in the manifest (archive_command may still be pushing the last one, so this waits, bounded). WAL that
    /// was dropped or archived elsewhere fails the backup here, naming the segment, and no record is written.
    /// </summary>
    private async Task RequireWalAsync(BackupRecord record, ClusterFacts facts, CancellationToken ct)
    {
        var first = WalFileName.Parse(record.StartWalFile);
        var last = WalFileName.Parse(record.StopWalFile);
        var segSize = record.WalSegmentSize;
        var clock = Stopwatch.StartNew();
        var pause = 10;
        // A standby cannot switch WAL: its backup's last segment is archived when the primary fills or switches it.
        if (facts.InRecovery && await store.GetInfoAsync(StoreLayout.WalRecordKey(last), ct).ConfigureAwait(false) is null)
            await AskPrimaryToSwitchAsync(facts, last, ct).ConfigureAwait(false);
        for (var n = first.SegmentNumber(segSize); n <= last.SegmentNumber(segSize);)
        {
            var name = WalFileName.ForSegment(record.Timeline, n, segSize);
            if (await store.GetInfoAsync(StoreLayout.WalRecordKey(name), ct).ConfigureAwait(false) is not null)
            {
                n++;
                continue;
            }
            if (clock.Elapsed >= options.WalWait)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath,
                    $"backup {record.Id} cannot be restored from {store.Description}: its WAL segment {name} (of {first} - {last}) " +
                    $"is not there after {options.WalWait.TotalSeconds:0} s; is archive_command archiving to this store? " +
                    "No record was written, so the backup is not listed");
            // archive_command usually stores it within tens of milliseconds of the switch: look every 10 ms for the first
            // second (a doubling pause overshot its arrival by up to 40 ms, on an incremental of half a second), then
            // every 100 ms.
            await Task.Delay(pause, ct).ConfigureAwait(false);
            pause = clock.Elapsed < TimeSpan.FromSeconds(1) ? 10 : 100;
        }
    }

    /// <summary>
    /// backup-push --remote: the same backup over the replication protocol, for a host without the data
    /// volume (a Kubernetes CronJob): <see cref="RemoteBackup"/> re-bundles pg_basebackup's tar exactly like a
    /// local backup, with the same checksums, and the record is the same.
    /// </summary>
    public async Task<BackupRecord> PushRemoteAsync(CancellationToken ct)
    {
        ClusterFacts facts;
        await using (var conn = await OpenAsync(ct).ConfigureAwait(false))
            facts = await ClusterFacts.ReadAsync(conn, ct).ConfigureAwait(false);
        RequireArchiving(facts);
        if (options.Type != BackupKinds.Full)
            throw new CloudArchiveException(ExitCode.Usage, $"--remote takes full backups only (pg_basebackup streams every file whole); " +
                $"run backup-push --type {options.Type} on the database host");
        if (facts.Tablespaces.Count > 0)
            throw new CloudArchiveException(ExitCode.Usage,
                $"--remote cannot back up tablespaces ({string.Join(", ", facts.Tablespaces.Select(t => t.Name))}): " +
                "pg_basebackup streams only one tar to stdout; run backup-push on the database host");

        var id = StoreLayout.NewId(DateTimeOffset.UtcNow);
        var startTime = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        Log.Info($"backup {id}: pg_basebackup from {PgConnectionInfo.Describe(db)}");
        var (results, label, stopLsn) = await new RemoteBackup(store, options).TakeAsync(id, facts, ct).ConfigureAwait(false);
        return await CommitAsync(id, facts, startTime, BackupLabel.StartLsn(label), stopLsn, label, "", results, clock, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks the primary (--primary-dbname, else the standby's primary_conninfo) for pg_switch_wal, so that
    /// <paramref name="last"/> is completed and archived now rather than at the primary's next archive_timeout. A
    /// primary that cannot be reached or refuses is said in one line; the wait for the segment goes on either way.
    /// </summary>
    private async Task AskPrimaryToSwitchAsync(ClusterFacts facts, WalFileName last, CancellationToken ct)
    {
        var conninfo = options.PrimaryDbName ?? (facts.PrimaryConninfo.Length > 0 ? facts.PrimaryConninfo : null);
        if (conninfo is null)
        {
            Log.Warn($"the backup was taken on a standby, which cannot switch WAL, and it has no primary_conninfo (or this role may not read " +
                $"it): waiting for the primary to archive {last} (archive_timeout); pass --primary-dbname to have it switched");
            return;
        }
        LibpqSettings.RegisterSecrets(conninfo);
        try
        {
            await using var primary = PgConnectionInfo.Open(conninfo, asWritten: options.PrimaryDbName is null);
            await using var conn = await primary.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand("select pg_catalog.pg_is_in_recovery(), pg_catalog.pg_switch_wal()::text", conn);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await r.ReadAsync(ct).ConfigureAwait(false);
            Log.Info($"the backup was taken on a standby: the primary at {PgConnectionInfo.Describe(primary)} switched WAL at {r.GetString(1)} " +
                $"so that {last} is archived");
        }
        catch (Exception e) when (e is NpgsqlException or CloudArchiveException or TimeoutException or System.Net.Sockets.SocketException)
        {
            Log.Warn($"the backup was taken on a standby, which cannot switch WAL, and the primary could not be asked to " +
                $"({Log.Redact(e.Message)}): waiting for it to archive {last} (archive_timeout); grant the role EXECUTE on pg_switch_wal, or " +
                "pass --primary-dbname");
        }
    }

    /// <summary>
    /// A primary that does not archive makes a useless backup. A standby's own archive_mode does not matter: its backup's
    /// WAL is the primary's, and is waited for in the store like any backup's.
    /// </summary>
    private static void RequireArchiving(ClusterFacts facts)
    {
        if (facts.ArchiveMode == "off" && !facts.InRecovery)
            throw new CloudArchiveException(ExitCode.Usage, "archive_mode is off: a base backup is useless without the WAL archive " +
                "(set archive_mode = on and archive_command = 'cloudarchive wal-push %p')");
    }

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken ct)
    {
        try
        {
            return await db.OpenConnectionAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new CloudArchiveException(ExitCode.PostgresFailed, $"cannot connect to PostgreSQL at {PgConnectionInfo.Describe(db)}: {e.Message}", e);
        }
    }

    private List<List<ScannedEntry>> Partition(List<ScannedEntry> entries)
    {
        var bundles = new List<List<ScannedEntry>> { new() };
        long size = 0;
        foreach (var e in entries)
        {
            if (size > 0 && size + e.Size > options.BundleBytes)
            {
                bundles.Add([]);
                size = 0;
            }
            bundles[^1].Add(e);
            size += e.Size + 512;
        }
        return bundles;
    }

    /// <summary>One bundle's share of the scan, read from the data directory (and tablespaces) into <paramref name="bundle"/>.</summary>
    private static async Task AddAsync(BundleEntryWriter bundle, List<ScannedEntry> items, CancellationToken ct)
    {
        foreach (var item in items)
        {
            if (item.IsDirectory)
            {
                await bundle.AddDirectoryAsync(item.Path, item.Mode, ct).ConfigureAwait(false);
                continue;
            }
            FileStream file;
            try
            {
                file = new FileStream(item.Source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16,
                    FileOptions.SequentialScan);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                continue; // removed since the scan (dropped table, finished temp file): replay agrees
            }
            await using (file)
                await bundle.AddFileAsync(item.Path, item.Mode, file, item.Size, ct).ConfigureAwait(false);
        }
    }
}
