using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Wal;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>The server programs of one PostgreSQL major: the directory holding postgres and pg_ctl, and their version.</summary>
/// <param name="Directory">Where postgres and pg_ctl are.</param>
/// <param name="Version">What postgres --version says.</param>
/// <param name="Major">Its major version.</param>
public sealed record ServerBinaries(string Directory, string Version, int Major)
{
    /// <summary>
    /// The server binaries of <paramref name="major"/>: <paramref name="pgBin"/> when given (and then of that major, or
    /// refused), else Debian's /usr/lib/postgresql/MAJOR/bin, the PGDG RPMs' /usr/pgsql-MAJOR/bin, or pg_config --bindir.
    /// </summary>
    public static async Task<ServerBinaries> FindAsync(int major, string? pgBin, CancellationToken ct)
    {
        var candidates = pgBin is not null
            ? [pgBin]
            : new List<string> { $"/usr/lib/postgresql/{major}/bin", $"/usr/pgsql-{major}/bin" };
        var seen = new List<string>();
        foreach (var dir in candidates)
        {
            var postgres = Path.Combine(dir, "postgres");
            if (!File.Exists(postgres) || !File.Exists(Path.Combine(dir, "pg_ctl"))) continue;
            string version;
            try
            {
                version = LibpqSettings.ProgramVersion(await PgProgram.RunAsync(postgres, ["--version"], ct).ConfigureAwait(false));
            }
            catch (CloudArchiveException)
            {
                continue;
            }
            if (PostgresVersion.ProgramMajor(version) == major) return new ServerBinaries(dir, version, major);
            seen.Add($"{dir} has PostgreSQL {version}");
        }
        throw new CloudArchiveException(ExitCode.PostgresFailed, pgBin is not null
            ? $"--pg-bin {pgBin} holds no PostgreSQL {major} server (postgres and pg_ctl){(seen.Count > 0 ? $": {seen[0]}" : "")}; the backup is of " +
                $"PostgreSQL {major}"
            : $"no PostgreSQL {major} server binaries (postgres, pg_ctl) in /usr/lib/postgresql/{major}/bin or /usr/pgsql-{major}/bin: install the " +
                $"server package of PostgreSQL {major} (Debian: postgresql-{major}) or pass --pg-bin DIR");
    }
}

/// <summary>
/// The private PostgreSQL server of a restore drill, which treats the restored cluster as untrusted: no TCP at all
/// (listen_addresses is empty), a Unix socket in a directory only this user can enter, under a port no server listens
/// on, trust authentication on that socket alone, a configuration of its own (the backup's configuration files are
/// moved out of the data directory, never read), no library or command the backup could name, and an environment
/// without the store's credentials. Stopped with an immediate shutdown: nothing of it is kept.
/// </summary>
public sealed class DrillServer
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Files of the backup's that configure or steer a server: moved out of the data directory before it starts.</summary>
    private static readonly string[] BackupControlledFiles =
    [
        "postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf", "tablespace_map", "standby.signal", "postmaster.opts",
    ];

    private readonly ServerBinaries _bins;
    private readonly string _dataDir;
    private readonly string _logFile;
    private readonly Dictionary<string, NpgsqlDataSource> _sources = new(StringComparer.Ordinal);
    private string? _user;

    private DrillServer(ServerBinaries bins, string dataDir, string socketDir, int port, string logFile)
    {
        _bins = bins;
        _dataDir = dataDir;
        SocketDirectory = socketDir;
        Port = port;
        _logFile = logFile;
    }

    /// <summary>The directory of the server's socket.</summary>
    public string SocketDirectory { get; }

    /// <summary>The port that names its socket.</summary>
    public int Port { get; }

    /// <summary>The server's major version.</summary>
    public int Major => _bins.Major;

    /// <summary>
    /// A private directory (0700) for the drill's sockets: in <paramref name="workDir"/>, or under /tmp when that path
    /// is too deep for a Unix socket (at most 107 bytes); the caller removes one made outside the work directory.
    /// </summary>
    public static string MakeSocketDirectory(string workDir)
    {
        var dir = Path.Combine(workDir, "socket");
        if (Path.Combine(dir, ".s.PGSQL.65535.lock").Length > 100) return Directory.CreateTempSubdirectory("cloudarchive-drill-").FullName;
        Directory.CreateDirectory(dir, Private);
        return dir;
    }

    /// <summary>
    /// Moves the backup's configuration out of <paramref name="dataDir"/> (into <paramref name="workDir"/>, where no
    /// server looks), writes the drill's own, and starts the server in the background (pg_ctl -W) with an environment
    /// that holds no secret: its restore_command asks the drill process for each WAL file over a socket.
    /// </summary>
    /// <param name="recoverySettings">The recovery settings the restore wrote (restore_command, recovery_target_*).</param>
    /// <param name="launcher">
    /// This program, whose hidden sandbox-exec command confines the server (see <see cref="CloudArchive.Native.Sandbox"/>) to
    /// reading the installation of <paramref name="bins"/>, the system's libraries and the launcher itself, and to
    /// writing <paramref name="workDir"/> and <paramref name="socketDir"/>; null: not confined (--no-sandbox).
    /// </param>
    public static async Task<DrillServer> StartAsync(ServerBinaries bins, string dataDir, string workDir, string socketDir,
        IReadOnlyList<string> recoverySettings, string? launcher, CancellationToken ct)
    {
        var port = FreePort();
        var hba = Path.Combine(workDir, "pg_hba.conf");
        await File.WriteAllTextAsync(hba, "# cloudarchive drill: the private socket only\nlocal all all trust\n", ct).ConfigureAwait(false);
        var ident = Path.Combine(workDir, "pg_ident.conf");
        await File.WriteAllTextAsync(ident, "", ct).ConfigureAwait(false);
        var aside = Path.Combine(workDir, "backup-config");
        Directory.CreateDirectory(aside, Private);
        foreach (var name in BackupControlledFiles) MoveAside(Path.Combine(dataDir, name), Path.Combine(aside, name));
        var readsAs = ServerConfigFile.TakenSettings(await BackupConfigAsync(Path.Combine(aside, "postgresql.conf"), ct).ConfigureAwait(false),
            await BackupConfigAsync(Path.Combine(aside, "postgresql.auto.conf"), ct).ConfigureAwait(false));

        var settings = new List<string>
        {
            "# cloudarchive drill: this server's whole configuration; the backup's own is not read",
            "listen_addresses = ''",
            $"port = {port.ToString(CultureInfo.InvariantCulture)}",
            $"unix_socket_directories = {BackupRestorer.Quote(socketDir)}",
            "unix_socket_permissions = 0700",
            $"hba_file = {BackupRestorer.Quote(hba)}",
            $"ident_file = {BackupRestorer.Quote(ident)}",
            "external_pid_file = ''",
            "ssl = off",
            "# nothing the backup names is loaded or run",
            "shared_preload_libraries = ''",
            "session_preload_libraries = ''",
            "local_preload_libraries = ''",
            "dynamic_library_path = '$libdir'",
            "jit = off",
            "archive_mode = off",
            "archive_command = ''",
            "archive_cleanup_command = ''",
            "recovery_end_command = ''",
            "primary_conninfo = ''",
            "primary_slot_name = ''",
            "hot_standby = on",
            "logging_collector = off",
            "log_destination = 'stderr'",
            // The drill reads the server's log for why it stopped: in PostgreSQL's own words.
            "lc_messages = 'C'",
            "shared_buffers = '128MB'",
            "huge_pages = off",
            // Files in the data directory, not in /dev/shm, which the sandbox does not open (other servers' segments are there).
            "dynamic_shared_memory_type = mmap",
        };
        if (bins.Major >= 15) settings.Add("archive_library = ''");
        if (bins.Major >= 17) settings.AddRange(["event_triggers = off", "allow_alter_system = off"]);
        if (readsAs.Count > 0)
        {
            settings.Add("# how the data reads, from the backup's configuration (plain values only; checks may depend on them)");
            settings.AddRange(readsAs);
        }
        settings.Add("# recovery, as the restore wrote it");
        settings.AddRange(recoverySettings);
        var control = ControlFile.TryRead(dataDir);
        // The defaults (80MB, 1GB) are too small for segments of 64 MiB and more: PostgreSQL's defaults are 5 and 64 segments.
        if (control?.SegmentSize is { } segment)
            settings.AddRange([F($"min_wal_size = '{Math.Max(80, 5 * segment >> 20)}MB'"), F($"max_wal_size = '{Math.Max(1024, 64 * segment >> 20)}MB'")]);
        // Hot standby refuses settings below the primary's: those come from pg_control, never from the backup's files.
        if (control?.Limits is { } limits)
        {
            settings.Add("# the primary's settings that recovery needs at least as high (from global/pg_control)");
            settings.AddRange(
            [
                $"wal_level = {(limits.WalLevel == 2 ? "logical" : "replica")}",
                F($"max_connections = {limits.MaxConnections}"),
                F($"max_worker_processes = {limits.MaxWorkerProcesses}"),
                F($"max_wal_senders = {limits.MaxWalSenders}"),
                F($"max_prepared_transactions = {limits.MaxPreparedTransactions}"),
                F($"max_locks_per_transaction = {limits.MaxLocksPerTransaction}"),
            ]);
        }
        await File.WriteAllTextAsync(Path.Combine(dataDir, "postgresql.conf"), string.Join('\n', settings) + "\n", ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(dataDir, "postgresql.auto.conf"), "# cloudarchive drill: nothing here\n", ct).ConfigureAwait(false);

        var server = new DrillServer(bins, dataDir, socketDir, port, Path.Combine(workDir, "postgres.log"));
        string[] start = ["-D", dataDir, "-l", server._logFile, "-W", "start"];
        if (launcher is null) await server.PgCtlAsync(start, ct).ConfigureAwait(false);
        else
            await server.RunAsync(launcher, CloudArchive.Native.Sandbox.LaunchArguments([Path.GetDirectoryName(bins.Directory)!, launcher],
                [workDir, socketDir], Path.Combine(bins.Directory, "pg_ctl"), start), ct).ConfigureAwait(false);
        return server;
    }

    /// <summary>A configuration file of the backup's, moved aside (a restore writes only regular files): read when it is not a link and at most 1 MiB.</summary>
    private static async Task<string> BackupConfigAsync(string path, CancellationToken ct)
    {
        var info = new FileInfo(path);
        return info.Exists && info.LinkTarget is null && info.Length <= 1 << 20 ? await File.ReadAllTextAsync(path, ct).ConfigureAwait(false) : "";
    }

    /// <summary>A file (or link, or directory) of the backup's, moved where no server reads it.</summary>
    private static void MoveAside(string path, string to)
    {
        if (Directory.Exists(path) && new DirectoryInfo(path).LinkTarget is null) Directory.Move(path, to);
        else if (File.Exists(path) || new FileInfo(path).LinkTarget is not null) File.Move(path, to);
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>The postmaster's pid while it runs; null once it has stopped (or before it wrote postmaster.pid).</summary>
    public int? PostmasterPid => RunningPostmaster(_dataDir);

    /// <summary>
    /// The pid of the postmaster running on <paramref name="dataDir"/>: the one its postmaster.pid names, if that process
    /// still runs postgres -D on this directory. A pid file left behind names a pid the system may have given to any
    /// other process since; that one is never taken for the server (nor killed as it).
    /// </summary>
    public static int? RunningPostmaster(string dataDir)
    {
        try
        {
            var first = File.ReadLines(Path.Combine(dataDir, "postmaster.pid")).FirstOrDefault();
            if (!int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) return null;
            var args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            return args.Length > 0 && Path.GetFileName(args[0]) is "postgres" or "postmaster" && args.Contains(dataDir, StringComparer.Ordinal) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // no pid file, or no such process
        }
    }

    /// <summary>The last lines of the server's log (the restore_command's messages are in it).</summary>
    public IReadOnlyList<string> LogTail(int lines)
    {
        try
        {
            return File.ReadLines(_logFile).TakeLast(lines).ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>
    /// A connection to <paramref name="database"/> as the cluster's bootstrap user (this user's name, else postgres),
    /// with the options that beat what the restored catalog stores per role and database (ALTER ROLE/DATABASE SET):
    /// no preloaded library, search_path pg_catalog, session_replication_role replica (triggers, rules and event
    /// triggers of the default kind do not fire), and on 17 and later no event trigger (login triggers).
    /// </summary>
    public async Task<NpgsqlConnection> ConnectAsync(string database, CancellationToken ct)
    {
        PostgresException? last = null;
        foreach (var user in _user is { } known ? [known] : new[] { Environment.UserName, "postgres" }.Distinct())
        {
            var conn = Source(user, database, SuperuserOptions).CreateConnection();
            try
            {
                await conn.OpenAsync(ct).ConfigureAwait(false);
                _user = user;
                return conn;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidAuthorizationSpecification)
            {
                await conn.DisposeAsync().ConfigureAwait(false);
                last = e; // no such role: try the next name
            }
            catch
            {
                await conn.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        throw new CloudArchiveException(ExitCode.PostgresFailed, $"the restored cluster has neither a role {Environment.UserName} nor postgres to connect " +
            $"as: {last?.MessageText}");
    }

    /// <summary>A connection as <paramref name="role"/> (the drill's unprivileged one), which may not set superuser-only options.</summary>
    public async Task<NpgsqlConnection> ConnectAsAsync(string role, string database, CancellationToken ct)
    {
        var conn = Source(role, database, RoleOptions(pinSearchPath: false)).CreateConnection();
        try
        {
            await conn.OpenAsync(ct).ConfigureAwait(false);
            return conn;
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The startup options of a superuser's connection (they override the catalog's per-role and per-database settings).</summary>
    private string SuperuserOptions =>
        "-c search_path=pg_catalog -c session_preload_libraries= -c local_preload_libraries= -c session_replication_role=replica" +
        (Major >= 17 ? " -c event_triggers=off" : "");

    /// <summary>
    /// The startup options of the unprivileged role (PGOPTIONS of pg_amcheck too): session_preload_libraries and
    /// event_triggers are superuser settings it may not give; the drill has removed the catalog's stored settings and
    /// disabled every event trigger before it connects.
    /// </summary>
    public static string RoleOptions(bool pinSearchPath) => (pinSearchPath ? "-c search_path=pg_catalog " : "") + "-c local_preload_libraries=";

    /// <summary>A data source per user, database and options, kept until the server stops.</summary>
    private NpgsqlDataSource Source(string user, string database, string options)
    {
        var cs = new NpgsqlConnectionStringBuilder
        {
            Host = SocketDirectory, Port = Port, Username = user, Database = database, Pooling = false, Timeout = 5, CommandTimeout = 0,
            ApplicationName = "cloudarchive drill", Options = options,
        }.ConnectionString;
        lock (_sources)
        {
            if (_sources.TryGetValue(cs, out var known)) return known;
            var builder = new NpgsqlSlimDataSourceBuilder(cs);
            // The catalog's types are the backup's: only the built-in ones are used, none is looked up in it.
            builder.ConfigureTypeLoading(t => t.EnableTypeLoading(false));
            return _sources[cs] = builder.Build();
        }
    }

    /// <summary>Stops the server at once (immediate shutdown), else kills it: it was only ever a copy.</summary>
    public async Task StopAsync()
    {
        List<NpgsqlDataSource> sources;
        lock (_sources) sources = [.. _sources.Values];
        foreach (var source in sources) await source.DisposeAsync().ConfigureAwait(false);
        await StopServerAsync().ConfigureAwait(false);
    }

    private async Task StopServerAsync()
    {
        if (PostmasterPid is null) return;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await PgCtlAsync(["-D", _dataDir, "-m", "immediate", "-w", "-t", "30", "stop"], timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CloudArchiveException or OperationCanceledException)
        {
            Log.Warn($"pg_ctl stop of the drill's server failed ({e.Message}): killing it");
        }
        if (PostmasterPid is { } pid)
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // gone meanwhile
            }
    }

    /// <summary>
    /// pg_ctl, and the server it starts, with an environment that holds no secret: PATH, the locale, the time zone and
    /// the library path, nothing else (no AWS_*, AZURE_*, CLOUDARCHIVE_*, no PG* variable).
    /// </summary>
    private Task PgCtlAsync(IEnumerable<string> args, CancellationToken ct) => RunAsync(Path.Combine(_bins.Directory, "pg_ctl"), args, ct);

    /// <summary>pg_ctl, or the launcher that confines it (its failure's message is pg_ctl's or the launcher's).</summary>
    private async Task RunAsync(string program, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        psi.Environment.Clear();
        foreach (var (key, value) in ServerEnvironment()) psi.Environment[key] = value;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new CloudArchiveException(ExitCode.PostgresFailed, "cannot start pg_ctl");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
            throw new CloudArchiveException(ExitCode.PostgresFailed,
                $"pg_ctl {psi.ArgumentList[^1]} failed: " +
                    $"{string.Join(' ', ((await stderr.ConfigureAwait(false)) + " " + (await stdout.ConfigureAwait(false))).Split((char[])['\n', '\r'],
                        StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))}");
    }

    /// <summary>A port no server listens on now (the kernel's pick of a free one on 127.0.0.1); only the socket's name uses it.</summary>
    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>
    /// The variables of this process that the drill's server gets: none that could hold a secret. And CLOUDARCHIVE_CONFIG
    /// set to nothing: its restore_command (wal-fetch --drill-fd) reads no config file, not even the default one, which its
    /// sandbox may not read and which it needs nothing from (the drill serves every fetch).
    /// </summary>
    internal static IEnumerable<(string Key, string Value)> ServerEnvironment()
    {
        yield return (SettingsTable.Config.Variable, "");
        foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>().Order(StringComparer.Ordinal))
            if (key is "PATH" or "LANG" or "LANGUAGE" or "TZ" or "LD_LIBRARY_PATH" || key.StartsWith("LC_", StringComparison.Ordinal))
                yield return (key, Environment.GetEnvironmentVariable(key) ?? "");
    }
}
