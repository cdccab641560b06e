using CloudArchive.Core.Backup;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Manifest;
using CloudArchive.Postgres;

namespace CloudArchive.Cli;

/// <summary>backup-push, backup-list, plan and restore: base backups and point-in-time recovery.</summary>
internal static class BackupCommands
{
    internal static readonly Option<string> DbName = new("--dbname") { Description = "Connection string or URI (libpq style); PGHOST, PGPORT, PGUSER, " +
        "PGDATABASE, PGPASSWORD, PGPASSFILE fill the rest" };
    private static readonly Option<string> PgDataOption = new("--pgdata") { Description = "Data directory to read (default: the server's data_directory)" };
    private static readonly Option<bool> Remote = new("--remote") { Description = "Back up over the replication protocol (pg_basebackup), from a host " +
        "without the data directory" };
    private static readonly Option<string> Type = new Option<string>("--type") { Description = "full (default), diff (what changed since the last full " +
        "backup) or incr (since the last backup): diff and incr store only the changed blocks of relation files and the changed other files" }.AcceptOnlyFromAmong("full", "diff", "incr");
    internal static readonly Option<string> BackupId = new("--backup") { Description = "Backup id, or latest (default: the latest backup that can reach " +
        "the target)" };
    private static readonly Option<string> TargetTime = new("--target-time") { Description = "Recover to this time (recovery_target_time), e.g. " +
        "'2026-11-24 10:42:00+00' or '2026-11-24 10:42:00 Europe/Berlin'; without a zone, in the cluster's timezone, as PostgreSQL reads it" };
    private static readonly Option<string> TargetLsn = new("--target-lsn") { Description = "Recover to this LSN (recovery_target_lsn)" };
    private static readonly Option<string> TargetXid = new("--target-xid") { Description = "Recover to this transaction id (recovery_target_xid)" };
    private static readonly Option<string> TargetName = new("--target-name") { Description = "Recover to this restore point (recovery_target_name)" };
    private static readonly Option<bool> TargetImmediate = new("--target-immediate") { Description = "Stop as soon as the backup is consistent " +
        "(recovery_target = 'immediate')" };
    private static readonly Option<string> TargetTimeline = new("--target-timeline") { Description = "latest (default), current or a timeline number " +
        "(recovery_target_timeline)" };
    private static readonly Option<string> TargetAction = new Option<string>("--target-action") { Description = "promote, pause (PostgreSQL's default) or shutdown " +
        "(recovery_target_action)" }.AcceptOnlyFromAmong("promote", "pause", "shutdown");
    private static readonly Option<string> To = new("--to") { Description = "Empty or new directory to restore into (with --delta: the existing " +
        "data directory)", Required = true };
    private static readonly Option<bool> Delta = new("--delta") { Description = "Restore into an existing, stopped data directory of the same " +
        "cluster: keep the files and blocks that match the backup, rewrite the rest, remove what the backup does not have" };
    private static readonly Option<string> ArchiveMode = new Option<string>("--archive-mode") { Description = "preserve (default): the restored server archives " +
        "as the backup's configuration says (replacing the cluster); off: it archives nothing (archive_mode = off: a copy)" }.AcceptOnlyFromAmong("preserve", "off");
    private static readonly Option<string> PrimaryDbName = new("--primary-dbname") { Description = "A backup of a standby: the primary to ask " +
        "for a WAL switch so the backup's last segment is archived at once (conninfo or URI; default: the standby's primary_conninfo)" };
    private static readonly Option<bool> Standby = new("--standby") { Description = "Restore as a standby: standby.signal, the archive's latest " +
        "timeline, no recovery target; it replays the archive, then streams from --primary-conninfo, and stays a standby until promoted" };
    private static readonly Option<string> PrimaryConninfo = new("--primary-conninfo") { Description = "With --standby: the primary to stream from " +
        "(primary_conninfo, e.g. 'host=db1 user=replicator'); a password in it is written to postgresql.auto.conf, as pg_basebackup -R does, and never printed" };
    private static readonly Option<bool> TablespaceInPlace = new("--tablespace-in-place") { Description = "Restore tablespaces not moved by " +
        "--tablespace-map to the locations the backup records (outside --to)" };
    private static readonly Option<string[]> DbInclude = new("--db-include") { Description = "Restore only this database (repeatable) with the " +
        "shared catalog and template0, template1 and postgres; every other database's files are written as zeros, to be dropped (DROP DATABASE) once " +
        "the server is up", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string[]> TablespaceMap = new("--tablespace-map") { Description = "OLD=NEW: restore the tablespace at OLD into NEW " +
        "(repeatable)", AllowMultipleArgumentsPerToken = false };

    /// <summary>The server's database system identifier; null when it cannot be asked (the backup's own connection then says why).</summary>
    private static async Task<ulong?> SystemIdOfAsync(Npgsql.NpgsqlDataSource db, CancellationToken ct)
    {
        try
        {
            await using var cmd = db.CreateCommand("select system_identifier::text from pg_control_system()");
            return ulong.TryParse(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) as string, out var id) ? id : null;
        }
        catch (Npgsql.NpgsqlException)
        {
            return null;
        }
    }

    public static IEnumerable<Command> Build()
    {
        var push = new Command("backup-push", "Take a base backup of a running cluster into the store. Example: cloudarchive backup-push --type incr") { DbName, PgDataOption, Remote, Type, PrimaryDbName };
        Settings.AddOptions(push);
        CommandRunner.SetAction(push, async (ctx, ct) =>
        {
            var level = ctx.Settings.GetInt(SettingsTable.CompressLevel);
            await using var db = PgConnectionInfo.Open(ctx.Parse.GetValue(DbName));
            // The history of the cluster being backed up (after store-upgrade, the upgraded cluster's own).
            var store = ctx.OpenStore(await SystemIdOfAsync(db, ct).ConfigureAwait(false));
            using var progress = TtyProgress.Start("backup");
            var walWait = TimeSpan.FromSeconds(ctx.Settings.GetInt(SettingsTable.BackupWalTimeout));
            var type = ctx.Parse.GetValue(Type) ?? BackupKinds.Full;
            var pusher = new BackupPusher(store, db, new BackupPushOptions(ctx.Parse.GetValue(PgDataOption),
                level, ctx.Settings.GetInt(SettingsTable.Jobs, Environment.ProcessorCount), Progress: progress)
                { WalWait = walWait, PgBin = ctx.Settings.Get(SettingsTable.PgBin), Type = type, DbName = ctx.Parse.GetValue(DbName),
                    PrimaryDbName = ctx.Parse.GetValue(PrimaryDbName), WalSummaries = !ctx.Settings.GetBool(SettingsTable.NoWalSummaries) });
            var record = ctx.Parse.GetValue(Remote)
                ? await pusher.PushRemoteAsync(ct).ConfigureAwait(false)
                : await pusher.PushAsync(ct).ConfigureAwait(false);
            Console.Out.WriteLine(F($"backup {record.Id}: {Kind(record)}, {record.Entries.Count(e => e.Sha256 is not null)} files, {Units.Mib(record.Size)} stored as ") +
                F($"{Units.Mib(record.StoredSize)} in {(record.StopTime - record.StartTime).TotalSeconds:0.0} s; WAL {record.StartWalFile} - ") +
                F($"{record.StopWalFile} (LSN {record.StartLsn} - {record.StopLsn}, timeline {record.Timeline})"));
            return ExitCode.Ok;
        });

        var list = new Command("backup-list", "List the base backups in the store. Example: cloudarchive backup-list --json") { CommonOptions.Json };
        Settings.AddOptions(list);
        CommandRunner.SetAction(list, async (ctx, ct) =>
        {
            // Every history of an upgraded store (newest first), unless --system-id picks one.
            var groups = ctx.Settings.Get(SettingsTable.SystemId) is null
                ? await BackupCatalog.ListEveryHistoryAsync(ctx.OpenWholeStore(), ct).ConfigureAwait(false)
                : [(ctx.Settings.Get(SettingsTable.SystemId), await new BackupCatalog(ctx.OpenStore()).ListBackupsAsync(ct).ConfigureAwait(false))];
            var backups = groups.SelectMany(g => g.Backups.AsEnumerable().Reverse()).Reverse().ToList();
            if (ctx.Parse.GetValue(CommonOptions.Json))
                // Newest first, as the text and every other list and JSON of CloudArchive.
                JsonOutput.Write(Console.Out, [.. backups.AsEnumerable().Reverse().Select(b => BackupView.Of(b))], OutputJson.Default.IReadOnlyListBackupView);
            else if (backups.Count == 0) Console.Out.WriteLine("no backups");
            else
                foreach (var (system, group) in groups)
                {
                    if (groups.Count > 1) Console.Out.WriteLine($"database system {system ?? "(no backup yet)"}:");
                    foreach (var b in group.AsEnumerable().Reverse())
                        Console.Out.WriteLine(F($"{b.Id}  {Kind(b),-34}  {b.StopTime:yyyy-MM-dd HH:mm:ss}Z  timeline {b.Timeline}  LSN {b.StartLsn} - {b.StopLsn}  ") +
                            F($"{Units.Mib(b.Size)} ({Units.Mib(b.StoredSize)} stored)") + (b.Node is { } node ? $"  on {RestoreLayout.Printable(node)}" : ""));
                }
            return ExitCode.Ok;
        });

        var plan = new Command("plan", "Show what a restore to a target needs: backup, timelines, WAL range, bytes. Example: " +
            "cloudarchive plan --target-time '2026-11-24 10:42:00+00'") { BackupId, CommonOptions.Json };
        AddTargetOptions(plan);
        Settings.AddOptions(plan);
        CommandRunner.SetAction(plan, async (ctx, ct) =>
        {
            var p = await new BackupCatalog(ctx.OpenStore()).PlanAsync(ReadTarget(ctx), ctx.Parse.GetValue(BackupId), ct).ConfigureAwait(false);
            if (ctx.Parse.GetValue(CommonOptions.Json)) JsonOutput.Write(Console.Out, PlanView.Of(p), OutputJson.Default.PlanView);
            else Console.Out.Write(PlanText(p));
            return ExitCode.Ok;
        });

        var restore = new Command("restore",
            "Restore a base backup into an empty directory and configure recovery to a target (or make a standby: --standby). Example: cloudarchive restore --to " +
                "/var/lib/postgresql/15/restored --target-time '2026-11-24 10:42:00+00' --target-action promote")
            { To, BackupId, TargetAction, TablespaceMap, TablespaceInPlace, Delta, ArchiveMode, Standby, PrimaryConninfo, DbInclude };
        Settings.AddOptions(restore);
        AddTargetOptions(restore);
        CommandRunner.SetAction(restore, async (ctx, ct) =>
        {
            var store = ctx.OpenStore();
            var target = ReadTarget(ctx);
            var action = ctx.Parse.GetValue(TargetAction);
            // The options are checked before anything is read from the store.
            var standby = StandbyOf(ctx, target, action);
            var map = RestoreSequence.ParseTablespaceMap(ctx.Parse.GetValue(TablespaceMap) ?? []);
            var archiveMode = ctx.Parse.GetValue(ArchiveMode) ?? "preserve";
            var sequence = await RestoreSequence.PlanAsync(store, target, ctx.Parse.GetValue(BackupId), ct).ConfigureAwait(false);
            var p = sequence.Plan;
            Console.Out.Write(PlanText(p));
            if (sequence.SelectDatabases(ctx.Parse.GetValue(DbInclude) ?? []) is { } selected)
                Console.Out.WriteLine($"databases    {string.Join(", ", selected.Included.Select(d => RestoreLayout.Printable(d.Name)))} whole, with the shared " +
                    $"catalog, template0, template1 and postgres; as zeros, to be dropped: " +
                    (selected.Others.Count == 0 ? "none" : string.Join(", ", selected.Others.Select(d => RestoreLayout.Printable(d.Name)))));
            // Every path of the record is checked before anything is written; tablespaces go only where the operator said.
            var layout = sequence.LayOut(ctx.Parse.GetValue(To)!, map, ctx.Parse.GetValue(TablespaceInPlace));
            foreach (var ts in layout.Tablespaces)
                Console.Out.WriteLine($"tablespace {ts.Name} (OID {ts.Oid}) -> " +
                    $"{ts.Location}{(ts.Moved ? $" (moved from {ts.RecordedLocation})" : " (its recorded location, --tablespace-in-place)")}");
            var result = await sequence.RestoreAsync(new RestoreSettings(RestoreCommandLine(ctx), action)
            {
                Jobs = ctx.Settings.GetInt(SettingsTable.Jobs, Environment.ProcessorCount),
                Delta = ctx.Parse.GetValue(Delta),
                ArchiveOff = archiveMode == "off",
                Standby = standby,
            }, TtyProgress.Start, ct).ConfigureAwait(false);
            if (result.Delta is { } d)
                Console.Out.WriteLine(F($"delta: {d.FilesKept} of {result.Files} files already matched the backup; rewrote {d.BlocksRewritten} blocks ") +
                    F($"and whole files in {d.FilesRewritten} files ({Units.Mib(d.BytesRewritten)}); removed {d.Removed} files and directories the backup does not have"));
            Console.Out.WriteLine(F($"restored {result.Files} files ({Units.Mib(result.Bytes)} written) into {result.DataDirectory} in ") +
                F($"{result.Elapsed.TotalSeconds:0.0} s, every checksum verified") +
                (result.ZeroedFiles > 0 ? F($"; {result.ZeroedFiles} files of the databases not included written as zeros") : ""));
            if (sequence.Databases is { Others.Count: > 0 } dropped)
                Console.Out.WriteLine("once the server is up, drop the databases not included (they cannot be connected to): " +
                    string.Join("; ", dropped.Others.Select(d => $"DROP DATABASE \"{RestoreLayout.Printable(d.Name).Replace("\"", "\"\"", StringComparison.Ordinal)}\"")));
            if (result.RemovedSettings.Count > 0)
                Console.Out.WriteLine($"removed from postgresql.auto.conf the recovery settings the backup carried (an earlier restore's): " +
                    $"{string.Join(", ", result.RemovedSettings)}");
            Console.Out.WriteLine($"wrote backup_label, {(standby is null ? "recovery.signal" : "standby.signal")} and to postgresql.auto.conf:");
            foreach (var line in result.ConfigLines) Console.Out.WriteLine("  " + Log.Redact(line));
            if (standby is not null)
                Console.Out.WriteLine("standby: it replays the archive to its end on the newest timeline, then " + (standby.PrimaryConninfo is null
                    ? "waits for more WAL in the archive (no --primary-conninfo)" : "streams from its primary") +
                    ", and stays a standby until promoted (pg_ctl promote); a segment not yet archived never ends its recovery");
            // Where the restored server's WAL goes once it is promoted: a copy archiving into production's store is a trap.
            if (archiveMode == "off")
                Console.Out.WriteLine("archiving: off (--archive-mode off): this server archives nothing, its new timeline stays out of every store");
            else
                Console.Out.WriteLine("archiving: the backup's own (--archive-mode preserve): " +
                    (result.Archiving.GetValueOrDefault("archive_mode") is { } mode && mode.Trim('\'') is not ("off" or "false" or "0") && result.Archiving.ContainsKey("archive_command")
                        ? $"archive_mode = {RestoreLayout.Printable(mode)}, archive_command = {RestoreLayout.Printable(result.Archiving["archive_command"])}: once promoted, this server archives its new " +
                            $"timeline (after the newest in the archive, {p.TargetTimeline} or later) wherever that command points; for a copy, restore " +
                            "with --archive-mode off"
                        : "archive_mode is off or no archive_command is set in its configuration files: it archives nothing unless you set them"));
            var url = ctx.Settings.RequireStore();
            if (ctx.Settings.ConfigPath is null && !url.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
                Console.Out.WriteLine("note: the restore_command carries no secret (no --config was given): "
                    + "the server's user needs the store's credentials in its own environment "
                    + "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials; AZURE_STORAGE_CONNECTION_STRING or CLOUDARCHIVE_AZURE_*) "
                    + "before pg_ctl start, or restore with --config FILE");
            // The data directory runs only under its own major's binaries; say which, as the record knows it.
            var major = PostgresVersion.Major(p.Backup.ServerVersionNum);
            if (result.Owner is { } owner)
                Console.Out.WriteLine(F($"ownership: run as root, every restored file was given to uid {owner.User}, gid {owner.Group} (who owns ") +
                    $"{result.DataDirectory} or the directory it was made in); start the server as that user");
            Console.Out.WriteLine((result.Owner is null ? "next: check the directory is owned by the server's user (chown -R postgres:postgres), then start the server "
                : "next: start the server ") + $"with PostgreSQL {major}'s pg_ctl (the backup is of PostgreSQL {PostgresVersion.Display(p.Backup.ServerVersionNum)}):");
            Console.Out.WriteLine($"  pg_ctl -D {result.DataDirectory} start");
            if (p.Target.Kind != TargetKind.EndOfArchive && (action ?? "pause") == "pause")
                Console.Out.WriteLine("  it pauses at the target: inspect, then SELECT pg_wal_replay_resume(); to promote");
            return ExitCode.Ok;
        });
        return [push, list, plan, restore];
    }

    internal static void AddTargetOptions(Command c)
    {
        foreach (var o in new Option[] { TargetTime, TargetLsn, TargetXid, TargetName, TargetImmediate, TargetTimeline }) c.Add(o);
    }

    internal static RecoveryTarget ReadTarget(CommandContext ctx)
    {
        var p = ctx.Parse;
        var given = new List<RecoveryTarget>();
        // Read in its zone by the planner (TargetTime): without one, in the cluster's timezone, as PostgreSQL reads it.
        if (p.GetValue(TargetTime) is { } t) given.Add(new RecoveryTarget(TargetKind.Time, t));
        if (p.GetValue(TargetLsn) is { } l)
        {
            if (!Core.Wal.Lsn.TryParse(l, out _)) throw new CloudArchiveException(ExitCode.Usage, $"--target-lsn '{l}' is not an LSN (X/X)");
            given.Add(new RecoveryTarget(TargetKind.Lsn, l));
        }
        if (p.GetValue(TargetXid) is { } x)
        {
            if (!ulong.TryParse(x, out _)) throw new CloudArchiveException(ExitCode.Usage, $"--target-xid '{x}' is not a transaction id");
            given.Add(new RecoveryTarget(TargetKind.Xid, x));
        }
        if (p.GetValue(TargetName) is { } n) given.Add(new RecoveryTarget(TargetKind.Name, n));
        if (p.GetValue(TargetImmediate)) given.Add(new RecoveryTarget(TargetKind.Immediate, null));
        if (given.Count > 1) throw new CloudArchiveException(ExitCode.Usage, "give at most one of --target-time, --target-lsn, --target-xid, " +
            "--target-name, --target-immediate");
        var target = given.Count == 1 ? given[0] : new RecoveryTarget(TargetKind.EndOfArchive, null);
        return target with { Timeline = p.GetValue(TargetTimeline) ?? "latest" };
    }

    /// <summary>--standby and --primary-conninfo, checked against the target options: a standby has no target and takes no action.</summary>
    private static StandbyRestore? StandbyOf(CommandContext ctx, RecoveryTarget target, string? action)
    {
        var conninfo = ctx.Parse.GetValue(PrimaryConninfo);
        if (!ctx.Parse.GetValue(Standby))
            return conninfo is null ? null : throw new CloudArchiveException(ExitCode.Usage, "--primary-conninfo is for --standby");
        if (target.Kind != TargetKind.EndOfArchive || action is not null || target.Timeline != "latest")
            throw new CloudArchiveException(ExitCode.Usage, "--standby takes no --target-*, --target-timeline or --target-action: a standby replays " +
                "the archive to its end on the newest timeline, then follows its primary");
        if (conninfo is not null && (conninfo.Contains('\n', StringComparison.Ordinal) || conninfo.Contains('\r', StringComparison.Ordinal) || conninfo.Trim().Length == 0))
            throw new CloudArchiveException(ExitCode.Usage, "--primary-conninfo must be one line of libpq settings");
        Postgres.LibpqSettings.RegisterSecrets(conninfo);
        return new StandbyRestore(conninfo);
    }

    /// <summary>restore_command for the restored server: this same binary and store; secrets stay in the config file or environment.</summary>
    internal static string RestoreCommandLine(CommandContext ctx)
    {
        var parts = new List<string> { Environment.ProcessPath ?? "cloudarchive", "wal-fetch", "%f", "%p" };
        if (ctx.Settings.ConfigPath is { } config) parts.AddRange(["--config", config]);
        parts.AddRange(["--store", ctx.Settings.RequireStore()]);
        foreach (var setting in SettingsTable.StoreAccess.Skip(1))
            if (setting.Kind == SettingKind.Switch)
            {
                if (ctx.Settings.GetBool(setting)) parts.Add(setting.Flag!);
            }
            else if (ctx.Settings.Get(setting) is { } value)
                // restore_command runs in the data directory: key and CA files by absolute path.
                parts.AddRange([setting.Flag!, setting.IsPath
                    ? string.Join(',', value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Path.GetFullPath))
                    : value]);
        return RestoreCommand.Build(parts);
    }

    private static string PlanText(RecoveryPlan p)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"target       {p.Target}, timeline {p.Target.Timeline} (= {p.TargetTimeline})");
        if (p.Target.Time is { } at)
            w.WriteLine(F($"target time  {at.UtcDateTime:yyyy-MM-dd HH:mm:ss.FFFFFF}Z, read in {p.Target.Zone}; written for PostgreSQL as {p.Target.Value}"));
        w.WriteLine($"backup       {p.Backup.Id} (ended {p.Backup.StopTime:u}, LSN {p.Backup.StartLsn} - {p.Backup.StopLsn}, timeline {p.Backup.Timeline})");
        if (p.Chain.Members.Count > 1) w.WriteLine($"chain        {p.Chain.Describe()}");
        w.WriteLine($"timelines    {string.Join(" -> ", p.TimelinePath)}");
        foreach (var wal in p.Wal)
            w.WriteLine($"  timeline {wal.Timeline}: {wal.FirstSegment} - {wal.LastSegment} ({wal.Segments} " +
                $"segments){(wal.EndsAt is { } e ? $", switches at {e}" : "")}");
        w.WriteLine($"WAL needed   {p.FirstWalSegment} - {p.LastWalSegment}");
        foreach (var ts in p.Backup.Tablespaces)
            w.WriteLine($"tablespace   {RestoreLayout.Printable(ts.Name)} (OID {ts.Oid}) at {RestoreLayout.Printable(ts.Location)}: outside the restore " +
                $"directory; restore needs --tablespace-map {RestoreLayout.Printable(ts.Location)}=NEW or --tablespace-in-place");
        w.WriteLine($"download     {Units.Mib(p.BackupBytes)} of backup + up to {Units.Mib(p.WalBytes)} of WAL");
        foreach (var note in p.Notes) w.WriteLine($"note         {note}");
        return w.ToString();
    }

    /// <summary>"full", or "incr on ID" for a backup that builds on another.</summary>
    internal static string Kind(BackupRecord b) => b.Reference is null ? b.Kind : $"{b.Kind} on {b.Reference}";

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
