using System.Text.Json;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// A Patroni cluster on 127.0.0.1 (one etcd, members node1 to node3 of Debian's PostgreSQL 15) driven through
/// infra/patroni-cluster.sh; roles and timelines are read from Patroni's REST API (GET /cluster).
/// </summary>
public sealed class PatroniCluster : IAsyncDisposable
{
    public sealed record Member(string Name, string Role, string State, int? Timeline)
    {
        public bool IsRunningLeader => Role == "leader" && State == "running";
        public bool IsRunningReplica => Role == "replica" && State == "running";
        public override string ToString() => $"{Name}: {Role}, {State}, timeline {Timeline?.ToString() ?? "-"}";
    }

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private readonly Dictionary<string, (int Api, int Pg)> _ports;

    public string Dir { get; }
    public IReadOnlyCollection<string> Names => _ports.Keys;

    private PatroniCluster(string dir, Dictionary<string, (int Api, int Pg)> ports)
    {
        Dir = dir;
        _ports = ports;
    }

    /// <param name="replicaMethod">the command of a replica creation method "cloudarchive", listed before basebackup</param>
    /// <param name="methodOptions">keys of that method, KEY=VALUE (Patroni passes them to the command as --KEY=VALUE)</param>
    public static async Task<PatroniCluster> StartAsync(string dir, string archiveCommand, string restoreCommand, string replicaMethod,
        params string[] methodOptions)
    {
        var cluster = new PatroniCluster(dir, []);
        var started = await Script(["start", dir, "--archive-command", archiveCommand, "--restore-command", restoreCommand,
            "--replica-method", replicaMethod, .. methodOptions.SelectMany(o => new[] { "--replica-method-option", o })]);
        if (started.ExitCode != 0)
        {
            await cluster.DisposeAsync();
            throw new InvalidOperationException("infra/patroni-cluster.sh start failed: " + started);
        }
        var env = File.ReadAllLines(Path.Combine(dir, "cluster.env")).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => int.Parse(p[1]));
        foreach (var key in env.Keys.Where(k => k.EndsWith("_API_PORT", StringComparison.Ordinal)))
        {
            var name = key[..^"_API_PORT".Length];
            cluster._ports[name] = (env[key], env[name + "_PG_PORT"]);
        }
        return cluster;
    }

    /// <summary>The member's PostgreSQL server, for SQL (Patroni starts and stops it).</summary>
    public PgCluster Server(string name) => PgCluster.Attach(Path.Combine(Dir, name), _ports[name].Pg);

    public string DataDir(string name) => Path.Combine(Dir, name, "data");

    /// <summary>The member's log: Patroni's, its PostgreSQL server's and what archive_command and the replica method print.</summary>
    public string Log(string name) => File.ReadAllText(Path.Combine(Dir, name, "patroni.log"));

    public Task SwitchoverAsync(string leader, string candidate) =>
        Proc.CheckAsync(Script(["ctl", Dir, "switchover", "--leader", leader, "--candidate", candidate, "--force"]));

    /// <summary>SIGKILL of the member's Patroni and postmaster together, as when its host is lost.</summary>
    public Task KillAsync(string name) => Proc.CheckAsync(Script(["kill-member", Dir, name]));

    public Task StartMemberAsync(string name) => Proc.CheckAsync(Script(["start-member", Dir, name]));

    /// <summary>The members as Patroni's REST API shows them, asked of each member in turn until one answers.</summary>
    public async Task<IReadOnlyList<Member>?> MembersAsync()
    {
        foreach (var (api, _) in _ports.Values)
        {
            try
            {
                using var doc = JsonDocument.Parse(await Http.GetStringAsync($"http://127.0.0.1:{api}/cluster"));
                return doc.RootElement.GetProperty("members").EnumerateArray().Select(m => new Member(
                    m.GetProperty("name").GetString()!, m.GetProperty("role").GetString()!, m.GetProperty("state").GetString()!,
                    m.TryGetProperty("timeline", out var t) ? t.GetInt32() : null)).ToList();
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
        }
        return null;
    }

    /// <summary>The HTTP status of GET /<paramref name="path"/> on the member's REST API (/leader: 200 on the leader only).</summary>
    public async Task<int> ApiStatusAsync(string name, string path)
    {
        using var response = await Http.GetAsync($"http://127.0.0.1:{_ports[name].Api}/{path}");
        return (int)response.StatusCode;
    }

    /// <summary>Polls the REST API until <paramref name="done"/> holds; after 90 s fails with the last view and each member's log tail.</summary>
    public async Task<IReadOnlyList<Member>> WaitForAsync(Func<IReadOnlyList<Member>, bool> done, string what)
    {
        IReadOnlyList<Member>? members = null;
        for (var i = 0; i < 450; i++)
        {
            members = await MembersAsync();
            if (members is not null && done(members)) return members;
            await Task.Delay(200);
        }
        var logs = string.Concat(Names.Select(n => $"\n--- {n}\n{string.Join('\n', Log(n).Split('\n').TakeLast(30))}"));
        throw new TimeoutException($"{what} did not happen in 90 s; members: {string.Join("; ", members ?? [])}{logs}");
    }

    /// <summary>
    /// Stops every member and etcd and removes the members' data directories (the logs stay for a post-mortem); never
    /// throws, so a failing test's own exception is the one reported.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if ((await Script(["stop", Dir])).ExitCode != 0) return;
        foreach (var name in Names)
        {
            try { Directory.Delete(DataDir(name), recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static Task<ProcResult> Script(string[] args) =>
        Proc.RunAsync(Proc.Info(TestEnv.Infra("patroni-cluster.sh"), args), TimeSpan.FromMinutes(2));
}
