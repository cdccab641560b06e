using System.Net;
using System.Net.Sockets;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// A throwaway PostgreSQL cluster in a directory of its own, driven through infra/pg-cluster.sh: Debian's 15, or the
/// server binaries of another major (<see cref="PgVersions"/>). Client programs (psql, pgbench) are always Debian's 15.
/// </summary>
public sealed class PgCluster : IAsyncDisposable
{
    public string Dir { get; }
    public string DataDir => Path.Combine(Dir, "data");
    public int Port { get; }

    /// <summary>The server binaries (initdb, pg_ctl, postgres); null: Debian's 15.</summary>
    public string? BinDir { get; }
    private bool _running;

    /// <summary>false: another program starts and stops the server (<see cref="Attach"/>); disposing leaves it alone.</summary>
    private readonly bool _owned = true;

    private PgCluster(string dir, int port, string? binDir)
    {
        Dir = dir;
        Port = port;
        BinDir = binDir;
    }

    private PgCluster(string dir, int port, bool owned) : this(dir, port, null) => _owned = owned;

    /// <summary>A running server of Debian's 15 that another program manages (a Patroni member), for SQL and client programs:
    /// its socket is in <paramref name="dir"/>, its data directory <paramref name="dir"/>/data.</summary>
    public static PgCluster Attach(string dir, int port) => new(dir, port, owned: false);

    /// <summary>initdb a new cluster; <paramref name="extraConf"/> lines are appended to postgresql.conf.</summary>
    public static Task<PgCluster> InitAsync(string dir, params string[] extraConf) => InitWithAsync(null, dir, [], extraConf);

    /// <summary>initdb a new cluster with the server binaries in <paramref name="binDir"/> (null: Debian's 15) and <paramref name="initdbArgs"/>.</summary>
    public static async Task<PgCluster> InitWithAsync(string? binDir, string dir, string[] initdbArgs, params string[] extraConf)
    {
        var c = new PgCluster(dir, FreePort(), binDir);
        await Proc.CheckAsync(c.ScriptAsync(["init", dir, c.Port.ToString(), .. initdbArgs]));
        await c.AppendConfAsync(extraConf);
        return c;
    }

    /// <summary>A cluster over a data directory made by a restore or a base backup (already in <paramref name="dir"/>/data).</summary>
    public static Task<PgCluster> AdoptAsync(string dir, params string[] extraConf) => AdoptWithAsync(null, dir, extraConf);

    /// <summary><see cref="AdoptAsync(string, string[])"/>, run by the server binaries in <paramref name="binDir"/> (null: Debian's 15).</summary>
    public static async Task<PgCluster> AdoptWithAsync(string? binDir, string dir, params string[] extraConf)
    {
        var c = new PgCluster(dir, FreePort(), binDir);
        await c.AppendConfAsync([$"port = {c.Port}", $"unix_socket_directories = '{dir}'", .. extraConf]);
        return c;
    }

    /// <summary>infra/pg-cluster.sh with this cluster's server binaries.</summary>
    private Task<ProcResult> ScriptAsync(string[] args) =>
        Proc.RunAsync(Proc.Info(TestEnv.Infra("pg-cluster.sh"), args, BinDir is null ? null : new Dictionary<string, string?> { ["PG_BIN"] = BinDir }),
            TimeSpan.FromMinutes(5));

    /// <summary>Appends to postgresql.conf, or to <paramref name="file"/> (postgresql.auto.conf, read after it: its lines win).</summary>
    public async Task AppendConfAsync(IEnumerable<string> lines, string file = "postgresql.conf")
    {
        var text = string.Concat(lines.Select(l => l + "\n"));
        if (text.Length == 0) return;
        // Appending through a shell as postgres keeps the file's owner; the content comes via a temp file.
        var temp = Path.Combine(Dir, $"conf-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(temp, text);
        File.SetUnixFileMode(temp, (UnixFileMode)0b110_100_100);
        await Proc.CheckAsync(Proc.AsPostgresAsync(["sh", "-c", $"cat '{temp}' >> '{DataDir}/{file}'"]));
        File.Delete(temp);
    }

    public async Task StartAsync()
    {
        await Proc.CheckAsync(ScriptAsync(["start", Dir]));
        _running = true;
    }

    /// <summary>Starts the server and returns pg_ctl's outcome instead of throwing (for servers expected to refuse).</summary>
    public async Task<ProcResult> TryStartAsync()
    {
        var r = await ScriptAsync(["start", Dir]);
        _running = r.ExitCode == 0;
        return r;
    }

    public async Task StopAsync(string mode = "fast")
    {
        await Proc.CheckAsync(ScriptAsync(["stop", Dir, mode]));
        _running = false;
    }

    /// <summary>Runs SQL through psql and returns its unaligned, tuples-only output.</summary>
    public async Task<string> SqlAsync(string sql, string database = "postgres")
    {
        var r = await Proc.AsPostgresAsync(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", Dir, "-p", Port.ToString(), "-d", database, "-c", sql]);
        if (r.ExitCode != 0) throw new InvalidOperationException($"psql failed: {sql}\n{r}");
        return r.Stdout.Trim();
    }

    public Task<ProcResult> RunToolAsync(params string[] command) =>
        Proc.AsPostgresAsync([command[0], "-h", Dir, "-p", Port.ToString(), .. command[1..]], timeout: TimeSpan.FromMinutes(10));

    public string ServerLog => File.Exists(Path.Combine(Dir, "server.log")) ? File.ReadAllText(Path.Combine(Dir, "server.log")) : "";

    /// <summary>Stops the server and removes its data directory (gigabytes over a run); server.log stays for a post-mortem.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_owned) return;
        if (_running)
        {
            try { await StopAsync("immediate"); } catch (InvalidOperationException) { }
        }
        if (!_running)
        {
            try { Directory.Delete(DataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
