using System.Diagnostics;
using System.Globalization;
using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>What a drill restores and checks.</summary>
/// <param name="Target">Where recovery should get to (default: the end of the archive).</param>
/// <param name="BackupId">The backup to start from; null or latest: the plan's choice.</param>
/// <param name="Checks">SQL queries that must each return true.</param>
/// <param name="CheckDatabase">The database the checks run in.</param>
/// <param name="PgBin">The directory of the backup's major's server binaries; null: the usual places.</param>
/// <param name="WorkRoot">Where the private drill directory is made.</param>
/// <param name="Jobs">Parallel downloads.</param>
/// <param name="Timeout">The most the drill may take up to its checks; null: no limit.</param>
/// <param name="RestoreCommand">
/// The restore_command the restored server runs (this binary's wal-fetch), for the descriptor of its end of the drill's
/// WAL channel and the drill's token.
/// </param>
public sealed record DrillOptions(RecoveryTarget Target, string? BackupId, IReadOnlyList<string> Checks, string CheckDatabase, string? PgBin,
    string WorkRoot, int Jobs, TimeSpan? Timeout, Func<int, string, string> RestoreCommand)
{
    /// <summary>This program, which confines the drill's server (its hidden sandbox-exec command); null: the server runs unconfined.</summary>
    public string? Sandbox { get; init; }

    /// <summary>
    /// The most the drill directory may hold (an emptyDir's sizeLimit, which statfs does not show: the kubelet evicts the pod
    /// past it); 0: only the file system's free space counts.
    /// </summary>
    public long DirLimit { get; init; }

    /// <summary>The exit code of an interrupted drill: 130 for SIGINT, 143 for SIGTERM (the caller knows which came).</summary>
    public Func<int> InterruptedExitCode { get; init; } = () => 130;
}

/// <summary>
/// drill: the proof that the archive restores. Restores a backup into a private temporary directory, starts a server of
/// the backup's major on a private socket, waits for recovery to reach the target, checks that it accepts queries,
/// runs pg_amcheck (heap and btree, every database) when it is installed and each --check query, and records the
/// outcome in the store. The server is always stopped and the directory always removed, on failure and interruption too.
/// The backup is untrusted code: the server gets a configuration of its own and no secret (the drill serves its WAL
/// over a socket), and its catalog is made harmless before pg_amcheck and the checks run as an unprivileged role.
/// </summary>
public sealed class RestoreDrill(IObjectStore store, DrillOptions options, Action<string> say, StartProgress startProgress)
{
    private const string DirectoryPrefix = "cloudarchive-drill-";

    /// <summary>A failure of one stage: its name, its exit code, its message.</summary>
    private sealed class StageFailure(string stage, ExitCode code, string message) : Exception(message)
    {
        public string Stage { get; } = stage;
        public ExitCode Code { get; } = code;
    }

    /// <summary>Runs the drill and returns its record (also appended to the store). Never throws for a failed drill: the record says why.</summary>
    public async Task<DrillRecord> RunAsync(CancellationToken ct)
    {
        var start = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var id = DrillCatalog.NewId(start);
        var result = new Draft(id, start, options.Target.ToString());
        using var timeout = options.Timeout is { } limit ? new CancellationTokenSource(limit) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        string? workDir = null, socketDir = null;
        DrillServer? server = null;
        using var stopWal = new CancellationTokenSource();
        Task? walServer = null;
        System.Net.Sockets.Socket? walChannel = null;
        int? inheritedChannel = null;
        var stage = "plan";
        try
        {
            RemoveAbandoned();
            var sequence = await RestoreSequence.PlanAsync(store, options.Target, options.BackupId, linked.Token).ConfigureAwait(false);
            var plan = sequence.Plan;
            result.BackupId = plan.Backup.Id;
            result.ServerVersion = PostgresVersion.Display(plan.Backup.ServerVersionNum);

            stage = "binaries";
            var major = PostgresVersion.Major(plan.Backup.ServerVersionNum);
            var bins = await ServerBinaries.FindAsync(major, options.PgBin, linked.Token).ConfigureAwait(false);

            stage = "restore";
            workDir = MakeWorkDirectory(id, plan);
            socketDir = DrillServer.MakeSocketDirectory(workDir);
            var layout = sequence.LayOutPrivately(workDir);
            say($"restoring backup {plan.Backup.Id} (PostgreSQL {result.ServerVersion}, {plan.BackupBytes / 1048576.0:0.0} MiB stored) into {workDir}");
            // The server has no store credentials: its restore_command asks this process, which fetches and verifies, over
            // a socket pair the server inherits (its sandbox connects to nothing).
            var wal = new DrillWalService(store, layout.DataDirectory);
            (walChannel, inheritedChannel) = WalChannel();
            var restored = await sequence.RestoreAsync(new RestoreSettings(options.RestoreCommand(inheritedChannel.Value, wal.Token), "promote")
                { Jobs = options.Jobs, Sync = false }, startProgress, linked.Token).ConfigureAwait(false);
            walServer = wal.RunAsync(walChannel, stopWal.Token);
            result.DownloadSeconds = restored.Elapsed.TotalSeconds;

            stage = "start";
            var replay = Stopwatch.StartNew();
            say($"starting PostgreSQL {bins.Version} from {bins.Directory} on a private socket, " +
                (options.Sandbox is not null ? $"confined ({Native.Sandbox.Describe(Native.Sandbox.LandlockAbi())})" : "NOT confined (--no-sandbox)") +
                $"; replaying WAL to {options.Target}");
            server = await DrillServer.StartAsync(bins, restored.DataDirectory, workDir, socketDir, restored.ConfigLines, options.Sandbox, linked.Token)
                .ConfigureAwait(false);
            Native.Posix.CloseDescriptor(inheritedChannel.Value);
            inheritedChannel = null;

            stage = "recovery";
            await WaitForRecoveryEndAsync(server, wal, linked.Token).ConfigureAwait(false);
            result.ReplaySeconds = replay.Elapsed.TotalSeconds;
            result.RestoreSeconds = clock.Elapsed.TotalSeconds;

            stage = "connect";
            await ReadPointReachedAsync(server, plan, result, linked.Token).ConfigureAwait(false);
            say($"recovery reached LSN {result.ReachedLsn}" + (result.ReachedTime is { } t ? $" (last transaction {t:u})" : "") +
                $" in {result.ReplaySeconds:0.0} s; restore time {result.RestoreSeconds:0.0} s");

            stage = "catalog";
            var amcheck = AmcheckProgram(bins);
            var role = await RestoredCatalog.PrepareAsync(server, amcheck is not null, linked.Token).ConfigureAwait(false);

            stage = "amcheck";
            result.Amcheck = await AmcheckAsync(bins, amcheck, role, server, linked.Token).ConfigureAwait(false);
            say($"pg_amcheck: {result.Amcheck}");

            stage = "check";
            foreach (var sql in options.Checks)
            {
                var check = await CheckAsync(server, role.Name, sql, linked.Token).ConfigureAwait(false);
                result.Checks.Add(check);
                say($"check {(check.Passed ? "passed" : "FAILED")}: {sql}{(check.Detail is { } d ? $" ({d})" : "")}");
            }
            if (result.Checks.FirstOrDefault(c => !c.Passed) is { } failed)
                throw new StageFailure("check", ExitCode.CheckFailed, $"check failed: {failed.Sql}: {failed.Detail}");
        }
        catch (StageFailure f)
        {
            result.Fail(f.Stage, f.Code, f.Message);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            result.Fail(stage, ExitCode.PostgresFailed, $"timed out after {options.Timeout!.Value.TotalSeconds:0} s (--timeout) in stage {stage}" +
                (server is not null ? $"; server log: {LastServerLines(server)}" : ""));
        }
        catch (OperationCanceledException)
        {
            result.Fail("interrupted", (ExitCode)options.InterruptedExitCode(), $"interrupted in stage {stage}");
        }
        catch (CloudArchiveException e)
        {
            result.Fail(stage, e.ExitCode, e.Message);
        }
        catch (NpgsqlException e)
        {
            result.Fail(stage, ExitCode.PostgresFailed, $"the drill's server: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            result.Fail(stage, ExitCode.InvalidInput, $"the drill directory: {e.Message}");
        }
        finally
        {
            if (inheritedChannel is { } fd) Native.Posix.CloseDescriptor(fd);
            if (server is not null) await server.StopAsync().ConfigureAwait(false);
            await stopWal.CancelAsync().ConfigureAwait(false);
            if (walServer is not null)
                try
                {
                    await walServer.ConfigureAwait(false);
                }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or OperationCanceledException)
                {
                    Log.Warn($"the drill's WAL socket: {e.Message}");
                }
            walChannel?.Dispose();
            if (socketDir is not null && !socketDir.StartsWith(workDir + "/", StringComparison.Ordinal)) RemoveDirectory(socketDir);
            if (workDir is not null) RemoveDirectory(workDir);
        }
        var record = result.Finish(clock.Elapsed);
        await SaveAsync(record).ConfigureAwait(false);
        return record;
    }

    /// <summary>The drill's end of its WAL channel, and the descriptor of the end its server inherits.</summary>
    private static (System.Net.Sockets.Socket Kept, int Inherited) WalChannel()
    {
        var (kept, inherited) = Native.Posix.InheritedSocketPair();
        return (new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(kept, ownsHandle: true)), inherited);
    }

    /// <summary>What a drill fills in as it goes.</summary>
    private sealed class Draft(string id, DateTimeOffset start, string target)
    {
        public string? BackupId, ServerVersion, ReachedLsn, Amcheck, Stage, Failure;
        public double? DownloadSeconds, ReplaySeconds, RestoreSeconds;
        public DateTimeOffset? ReachedTime;
        public ExitCode Code;
        public List<DrillCheck> Checks { get; } = [];

        public void Fail(string stage, ExitCode code, string message)
        {
            Stage = stage;
            Code = code;
            Failure = message.ReplaceLineEndings(" ");
        }

        public DrillRecord Finish(TimeSpan total)
        {
            var end = DateTimeOffset.UtcNow;
            return new DrillRecord
            {
                Id = id, StartTime = start, EndTime = end, Passed = Stage is null, ExitCode = (int)Code, FailedStage = Stage, Failure = Failure,
                Target = target, BackupId = BackupId, ServerVersion = ServerVersion, DownloadSeconds = DownloadSeconds, ReplaySeconds = ReplaySeconds,
                RestoreSeconds = RestoreSeconds, TotalSeconds = total.TotalSeconds, ReachedLsn = ReachedLsn, ReachedTime = ReachedTime,
                DataAgeSeconds = ReachedTime is { } t ? (end - t).TotalSeconds : null, Amcheck = Amcheck, Checks = Checks,
            };
        }
    }

    /// <summary>A private directory (mode 0700) for the restored cluster, after checking there is room for it.</summary>
    private string MakeWorkDirectory(string id, RecoveryPlan plan)
    {
        var root = Path.GetFullPath(options.WorkRoot);
        if (!Directory.Exists(root)) throw new StageFailure("restore", ExitCode.Usage, $"the drill directory {root} does not exist (--drill-dir)");
        var free = new DriveInfo(root).AvailableFreeSpace;
        var need = plan.Backup.Size + plan.WalBytes;
        var room = string.Create(CultureInfo.InvariantCulture, $"{root} has {Mib(free)} MiB free");
        if (options.DirLimit > 0)
        {
            // The limit counts the whole volume, what an earlier drill or anyone else left there included.
            var used = BytesUnder(root);
            var left = Math.Max(0, options.DirLimit - used);
            if (left < free)
            {
                free = left;
                room = string.Create(CultureInfo.InvariantCulture,
                    $"{root} has {Mib(left)} MiB left of its limit of {Mib(options.DirLimit)} MiB (--drill-dir-limit; {Mib(used)} MiB in use)");
            }
        }
        if (free < need)
            throw new StageFailure("restore", ExitCode.InvalidInput, string.Create(CultureInfo.InvariantCulture,
                $"{room}; the backup needs {Mib(need)} MiB or more: choose another --drill-dir or a larger volume"));
        var dir = Path.Combine(root, DirectoryPrefix + id);
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(dir, "drill.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        return dir;
    }

    private static string Mib(long bytes) => (bytes / 1048576.0).ToString("0", CultureInfo.InvariantCulture);

    /// <summary>The bytes of the files under <paramref name="root"/> (not following links), as a volume's limit counts them.</summary>
    private static long BytesUnder(string root) =>
        new DirectoryInfo(root).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 })
            .Where(f => f.LinkTarget is null).Sum(f => f.Length);

    /// <summary>
    /// A drill killed with SIGKILL (no chance to clean up) leaves its directory and perhaps its server: the next drill
    /// stops that server and removes the directory, when the process that made it is gone.
    /// </summary>
    private void RemoveAbandoned()
    {
        var root = Path.GetFullPath(options.WorkRoot);
        if (!Directory.Exists(root)) return;
        foreach (var dir in Directory.EnumerateDirectories(root, DirectoryPrefix + "*"))
        {
            try
            {
                var owner = File.ReadAllText(Path.Combine(dir, "drill.pid")).Trim();
                if (Directory.Exists($"/proc/{owner}")) continue;
                if (DrillServer.RunningPostmaster(Path.Combine(dir, "data")) is { } pid)
                    using (var p = Process.GetProcessById(pid)) p.Kill(entireProcessTree: true);
                say($"removing {dir}, left by a drill that was killed");
                RemoveDirectory(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // not ours, or not one we can judge: leave it
            }
        }
    }

    private static void RemoveDirectory(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warn($"could not remove the drill directory {dir}: {e.Message}");
        }
    }

    /// <summary>Until the server has left recovery (promoted at the target or the archive's end); a server that stops is a failed recovery.</summary>
    private static async Task WaitForRecoveryEndAsync(DrillServer server, DrillWalService wal, CancellationToken ct)
    {
        var started = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
            if (server.PostmasterPid is null)
            {
                // pg_ctl -W returns before the postmaster writes its pid file: give it a moment before calling it stopped.
                if (started.Elapsed < TimeSpan.FromSeconds(5) && !server.LogTail(50).Any(IsFatal)) continue;
                throw RecoveryFailure(server, wal.LastFailure);
            }
            try
            {
                await using var conn = await server.ConnectAsync("postgres", ct).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand("select pg_is_in_recovery()", conn);
                if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is false) return;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                // starting up, not yet consistent, or restarting: ask again
            }
        }
    }

    private static bool IsFatal(string line) => line.Contains("FATAL:", StringComparison.Ordinal) || line.Contains("PANIC:", StringComparison.Ordinal);

    /// <summary>
    /// Why the server stopped: the drill's own failed WAL fetch first (its exit code: a corrupt or missing object, a gap,
    /// the store down), else PostgreSQL's last FATAL or PANIC line.
    /// </summary>
    private static StageFailure RecoveryFailure(DrillServer server, CloudArchiveException? fetch)
    {
        // The server's log may echo what the backup holds (file and database names): no control character of it is printed.
        var tail = server.LogTail(200).Select(RestoreLayout.WithoutControlCharacters).ToList();
        var fatal = tail.LastOrDefault(IsFatal);
        // A fetch that failed before it reached the drill (the restore_command's own error: its channel, its arguments)
        // is told only in the server's log.
        var own = fetch is null ? tail.LastOrDefault(l => l.StartsWith(Log.ErrorPrefix, StringComparison.Ordinal)
            && !l.Contains($"exiting {(int)ExitCode.AbortRecovery} ", StringComparison.Ordinal)) : null;
        if (own is not null) own = "its restore_command failed: " + own[Log.ErrorPrefix.Length..].Trim();
        var why = string.Join("; ", new[] { fetch?.Message, own, fatal }.Where(l => l is not null));
        if (why.Length == 0) why = LastServerLines(server);
        var code = fetch?.ExitCode switch
        {
            ExitCode.Corrupt or ExitCode.NotFound => ExitCode.Corrupt,
            ExitCode.StoreUnavailable => ExitCode.StoreUnavailable,
            _ => ExitCode.PostgresFailed,
        };
        return new StageFailure("recovery", code, $"the server stopped during recovery: {why}");
    }

    private static string LastServerLines(DrillServer server) => string.Join(" | ", server.LogTail(3).Select(l => RestoreLayout.WithoutControlCharacters(l).Trim()));

    /// <summary>The point reached and how current it is; to the end of the archive, also that replay got through its last segment.</summary>
    private static async Task ReadPointReachedAsync(DrillServer server, RecoveryPlan plan, Draft result, CancellationToken ct)
    {
        await using var conn = await server.ConnectAsync("postgres", ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("select pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()", conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await reader.ReadAsync(ct).ConfigureAwait(false);
        result.ReachedLsn = reader.IsDBNull(0) ? null : reader.GetString(0);
        result.ReachedTime = reader.IsDBNull(1) ? null : new DateTimeOffset(reader.GetDateTime(1).ToUniversalTime(), TimeSpan.Zero);
        if (plan.Target.Kind != TargetKind.EndOfArchive || result.ReachedLsn is null) return;
        var segSize = (ulong)plan.Backup.WalSegmentSize;
        var reached = (Lsn.Parse(result.ReachedLsn).Value - 1) / segSize;
        var last = WalFileName.Parse(plan.LastWalSegment).SegmentNumber(plan.Backup.WalSegmentSize);
        if (reached < last)
            throw new StageFailure("recovery", ExitCode.NoRecoveryPath,
                $"recovery ended at LSN {result.ReachedLsn}, in segment {WalFileName.ForSegment(plan.TargetTimeline, reached, plan.Backup.WalSegmentSize).Name}, " +
                    $"before the end of the archive ({plan.LastWalSegment}): a segment after it could not be restored");
    }

    /// <summary>The major's pg_amcheck; null when it is not installed.</summary>
    private static string? AmcheckProgram(ServerBinaries bins) =>
        new[] { bins.Directory, $"/usr/lib/postgresql/{bins.Major}/bin" }.Select(d => Path.Combine(d, "pg_amcheck")).FirstOrDefault(File.Exists);

    /// <summary>
    /// pg_amcheck over every database (heap and btree) as the unprivileged role, when the server's major has it and
    /// the amcheck extension could be installed; "skipped: why" when not. No libpq variable of this process reaches it.
    /// </summary>
    private static async Task<string> AmcheckAsync(ServerBinaries bins, string? path, CheckRole role, DrillServer server, CancellationToken ct)
    {
        if (path is null) return $"skipped: pg_amcheck of PostgreSQL {bins.Major} is not installed";
        if (role.AmcheckUnavailable is { } why) return $"skipped: the amcheck extension is not installed for PostgreSQL {bins.Major} ({why})";
        using var p = PgProgram.Start(path,
            ["--host", server.SocketDirectory, "--port", server.Port.ToString(CultureInfo.InvariantCulture), "--username", role.Name,
             "--no-password", "--all"], writeStdin: false,
            new Dictionary<string, string> { ["PGOPTIONS"] = DrillServer.RoleOptions(pinSearchPath: true) }, log: null, withoutLibpqEnvironment: true);
        var output = await new StreamReader(p.StandardOutput).ReadToEndAsync(ct).ConfigureAwait(false);
        await p.WaitAsync(ct).ConfigureAwait(false);
        if (p.ExitStatus == 0) return "passed (heap and btree, every database)";
        var found = string.Join(" ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Take(4));
        throw new StageFailure("amcheck", p.ExitStatus == 2 ? ExitCode.CheckFailed : ExitCode.PostgresFailed, p.ExitStatus == 2
            ? $"pg_amcheck found corruption: {found}"
            : $"pg_amcheck failed: {p.Reason()}");
    }

    /// <summary>One --check, as the unprivileged role: it passes when its first column of its first row is true.</summary>
    private async Task<DrillCheck> CheckAsync(DrillServer server, string role, string sql, CancellationToken ct)
    {
        try
        {
            await using var conn = await server.ConnectAsAsync(role, options.CheckDatabase, ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(sql, conn);
            var value = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
            return value is true ? new DrillCheck(sql, true, null)
                : new DrillCheck(sql, false, $"returned {(value is null or DBNull ? "no value" : Convert.ToString(value, CultureInfo.InvariantCulture))}, not true");
        }
        catch (PostgresException e)
        {
            return new DrillCheck(sql, false, $"{e.SqlState}: {e.MessageText}");
        }
    }

    /// <summary>The record goes to the store whatever the outcome; a store that refuses it is a warning, not a failed drill.</summary>
    private async Task SaveAsync(DrillRecord record)
    {
        try
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await new DrillCatalog(store).SaveAsync(record, limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CloudArchiveException or OperationCanceledException)
        {
            Log.Warn($"could not record the drill in the store: {e.Message}");
        }
    }
}
