using System.Net;
using System.Net.Sockets;

namespace CloudArchive.IntegrationTests;

/// <summary>A throwaway PostgreSQL 15 cluster in a directory of its own, driven through infra/pg-cluster.sh.</summary>
public sealed class PgCluster : IAsyncDisposable
{
    public string Dir { get; }
    public string DataDir => Path.Combine(Dir, "data");
    public int Port { get; }
    private bool _running;

    private PgCluster(string dir, int port)
    {
        Dir = dir;
        Port = port;
    }

    /// <summary>initdb a new cluster; <paramref name="extraConf"/> lines are appended to postgresql.conf.</summary>
    public static async Task<PgCluster> InitAsync(string dir, params string[] extraConf)
    {
        var c = new PgCluster(dir, FreePort());
        await Proc.CheckAsync(Proc.RunAsync(TestEnv.Infra("pg-cluster.sh"), "init", dir, c.Port.ToString()));
        await c.AppendConfAsync(extraConf);
        return c;
    }

    /// <summary>A cluster over a data directory made by a restore or a base backup (already in <paramref name="dir"/>/data).</summary>
    public static async Task<PgCluster> AdoptAsync(string dir, params string[] extraConf)
    {
        var c = new PgCluster(dir, FreePort());
        await c.AppendConfAsync([$"port = {c.Port}", $"unix_socket_directories = '{dir}'", .. extraConf]);
        return c;
    }

    public async Task AppendConfAsync(IEnumerable<string> lines)
    {
        var text = string.Concat(lines.Select(l => l + "\n"));
        if (text.Length == 0) return;
        // Appending through a shell as postgres keeps the file's owner; the content comes via a temp file.
        var temp = Path.Combine(Dir, $"conf-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(temp, text);
        File.SetUnixFileMode(temp, (UnixFileMode)0b110_100_100);
        await Proc.CheckAsync(Proc.AsPostgresAsync(["sh", "-c", $"cat '{temp}' >> '{DataDir}/postgresql.conf'"]));
        File.Delete(temp);
    }

    public async Task StartAsync()
    {
        await Proc.CheckAsync(Proc.RunAsync(TestEnv.Infra("pg-cluster.sh"), "start", Dir));
        _running = true;
    }

    /// <summary>Starts the server and returns pg_ctl's outcome instead of throwing (for servers expected to refuse).</summary>
    public async Task<ProcResult> TryStartAsync()
    {
        var r = await Proc.RunAsync(TestEnv.Infra("pg-cluster.sh"), "start", Dir);
        _running = r.ExitCode == 0;
        return r;
    }

    public async Task StopAsync(string mode = "fast")
    {
        await Proc.CheckAsync(Proc.RunAsync(TestEnv.Infra("pg-cluster.sh"), "stop", Dir, mode));
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
