using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using CloudArchive.Core;
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
/// The private PostgreSQL server of a restore drill: no TCP at all (listen_addresses is empty), a Unix socket in a
/// directory only this user can enter, under a port no server listens on, trust authentication on that socket alone,
/// archiving off and every command the backup's configuration could run on this host cleared. Stopped with an
/// immediate shutdown: nothing of it is kept.
/// </summary>
public sealed class DrillServer
{
    private readonly ServerBinaries _bins;
    private readonly string _dataDir;
    private readonly string _logFile;
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

    /// <summary>
    /// Writes the drill's settings after the restored ones (the last occurrence of a setting wins) and starts the server
    /// in the background (pg_ctl -W), with this process's environment: the server's restore_command needs the store's
    /// settings and credentials, and the server runs nothing else.
    /// </summary>
    public static async Task<DrillServer> StartAsync(ServerBinaries bins, string dataDir, string workDir, CancellationToken ct)
    {
        var port = FreePort();
        // A Unix socket's path has at most 107 bytes: a deep drill directory gets its socket in a private one under /tmp.
        var socketDir = Path.Combine(workDir, "socket");
        if (Path.Combine(socketDir, $".s.PGSQL.{port}.lock").Length > 100)
            socketDir = Directory.CreateTempSubdirectory("cloudarchive-drill-").FullName;
        Directory.CreateDirectory(socketDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var hba = Path.Combine(workDir, "pg_hba.conf");
        await File.WriteAllTextAsync(hba, "# cloudarchive drill: the private socket only\nlocal all all trust\n", ct).ConfigureAwait(false);
        var ident = Path.Combine(workDir, "pg_ident.conf");
        await File.WriteAllTextAsync(ident, "", ct).ConfigureAwait(false);
        // A backup of a Debian cluster keeps its configuration in /etc: the data directory then has none.
        var conf = Path.Combine(dataDir, "postgresql.conf");
        if (!File.Exists(conf)) await File.WriteAllTextAsync(conf, "", ct).ConfigureAwait(false);
        string[] settings =
        [
            "listen_addresses = ''",
            $"port = {port.ToString(CultureInfo.InvariantCulture)}",
            $"unix_socket_directories = {Quote(socketDir)}",
            $"hba_file = {Quote(hba)}",
            $"ident_file = {Quote(ident)}",
            "external_pid_file = ''",
            "ssl = off",
            "archive_mode = off",
            "archive_cleanup_command = ''",
            "recovery_end_command = ''",
            "primary_conninfo = ''",
            "primary_slot_name = ''",
            "hot_standby = on",
            "logging_collector = off",
            "log_destination = 'stderr'",
            "shared_buffers = '128MB'",
            "huge_pages = off",
        ];
        await File.AppendAllTextAsync(Path.Combine(dataDir, "postgresql.auto.conf"),
            "\n# cloudarchive drill: a private server on a socket only, archiving off, nothing run on this host\n" +
            string.Join('\n', settings) + "\n", ct).ConfigureAwait(false);

        var server = new DrillServer(bins, dataDir, socketDir, port, Path.Combine(workDir, "postgres.log"));
        await server.PgCtlAsync(["-D", dataDir, "-l", server._logFile, "-W", "start"], ct).ConfigureAwait(false);
        return server;
    }

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

    /// <summary>A connection to <paramref name="database"/> as the cluster's bootstrap user (this user's name, else postgres).</summary>
    public async Task<NpgsqlConnection> ConnectAsync(string database, CancellationToken ct)
    {
        PostgresException? last = null;
        foreach (var user in _user is { } known ? [known] : new[] { Environment.UserName, "postgres" }.Distinct())
        {
            var b = new NpgsqlConnectionStringBuilder
            {
                Host = SocketDirectory, Port = Port, Username = user, Database = database, Pooling = false, Timeout = 5, CommandTimeout = 0,
                ApplicationName = "cloudarchive drill",
            };
            var conn = new NpgsqlConnection(b.ConnectionString);
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

    /// <summary>The user connections are made as (after the first <see cref="ConnectAsync"/>).</summary>
    public string User => _user ?? Environment.UserName;

    /// <summary>Stops the server at once (immediate shutdown), else kills it: it was only ever a copy. A socket directory outside the drill's goes too.</summary>
    public async Task StopAsync()
    {
        await StopServerAsync().ConfigureAwait(false);
        if (!SocketDirectory.StartsWith(Path.GetDirectoryName(_logFile)! + "/", StringComparison.Ordinal))
            try
            {
                Directory.Delete(SocketDirectory, recursive: true);
            }
            catch (IOException)
            {
                // already gone
            }
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

    /// <summary>pg_ctl with this process's environment: the server it starts runs the restore_command, which needs the store's settings.</summary>
    private async Task PgCtlAsync(IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Path.Combine(_bins.Directory, "pg_ctl"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new CloudArchiveException(ExitCode.PostgresFailed, "cannot start pg_ctl");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
            throw new CloudArchiveException(ExitCode.PostgresFailed,
                $"pg_ctl {string.Join(' ', psi.ArgumentList.Skip(psi.ArgumentList.Count - 1))} failed: " +
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

    private static string Quote(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
}
