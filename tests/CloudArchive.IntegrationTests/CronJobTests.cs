using System.Text.Json;
using System.Text.RegularExpressions;
using CloudArchive.Core.Configuration;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// The Kubernetes CronJobs of deploy/kubernetes cannot run here (no container engine), so each test runs
/// exactly the command and environment its CronJob runs — read from the YAML and the example Secret —
/// against the real S3 server and PostgreSQL over TCP, and ends with a restore compared with the source.
/// </summary>
public sealed partial class CronJobTests
{
    private static string Deploy(string file) => Path.Combine(TestEnv.RepoRoot, "deploy", "kubernetes", file);

    [GeneratedRegex(@"^\s*(command|args):\s*(\[.*\])\s*$")]
    private static partial Regex FlowList();

    [GeneratedRegex(@"^\s*-\s*name:\s*(\S+)\s*\n\s*value:\s*""([^""]*)""", RegexOptions.Multiline)]
    private static partial Regex LiteralEnv();

    [GeneratedRegex(@"^  ([A-Z_][A-Z0-9_]*):", RegexOptions.Multiline)]
    private static partial Regex SecretKey();

    /// <summary>The container's command line and literal environment, as the CronJob declares them.</summary>
    private static (List<string> CommandLine, Dictionary<string, string?> Env) ReadCronJob(string file)
    {
        var text = File.ReadAllText(Deploy(file));
        var lists = text.Split('\n').Select(l => FlowList().Match(l)).Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => JsonSerializer.Deserialize<List<string>>(m.Groups[2].Value)!);
        List<string> commandLine = lists.TryGetValue("command", out var command) ? [.. command, .. lists["args"]] : ["/usr/local/bin/cloudarchive", .. lists["args"]];
        var env = LiteralEnv().Matches(text).ToDictionary(m => m.Groups[1].Value, m => (string?)m.Groups[2].Value);
        Assert.Contains("secretRef:", text);
        return (commandLine, env);
    }

    /// <summary>Values for every key of the example Secret, pointing at the test servers; fails if the Secret has a key this test does not set.</summary>
    private static Dictionary<string, string?> SecretFor(Source s, string database)
    {
        var values = new Dictionary<string, string?>
        {
            ["CLOUDARCHIVE_STORE"] = s.Store.Url,
            ["CLOUDARCHIVE_S3_ENDPOINT"] = TestStore.S3Endpoint,
            ["CLOUDARCHIVE_S3_REGION"] = "us-east-1",
            ["AWS_ACCESS_KEY_ID"] = Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID"),
            ["AWS_SECRET_ACCESS_KEY"] = Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY"),
            ["PGHOST"] = "127.0.0.1",
            ["PGPORT"] = s.Cluster.Port.ToString(),
            ["PGUSER"] = "postgres",
            ["PGPASSWORD"] = "not-needed-trust-auth",
            ["DUMP_DATABASE"] = database,
        };
        var keys = SecretKey().Matches(File.ReadAllText(Deploy("secret.example.yaml"))).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(keys.Order(), values.Keys.Order());
        return values;
    }

    private static async Task<ProcResult> RunAsCronJobAsync(string file, Source s, string database, IReadOnlyDictionary<string, string?>? volumes = null)
    {
        var (commandLine, literal) = ReadCronJob(file);
        var env = SecretFor(s, database);
        foreach (var (k, v) in literal) env[k] = v;
        // A pod's volume mount (a path this machine does not have) becomes a directory of the test's.
        foreach (var (k, v) in volumes ?? new Dictionary<string, string?>()) env[k] = v;
        // The test server's certificate is self-signed: trusted as an operator with a private CA would add it to the Secret.
        env[SettingsTable.S3CaFile.Variable] = TestStore.CaFile;
        var args = commandLine.Select(a => a.Replace("/usr/local/bin/cloudarchive", TestEnv.Binary, StringComparison.Ordinal)).ToList();
        // The pod runs as a non-root user with no access to the data directory; so does this.
        var r = await Proc.RunAsync(Proc.Info("runuser", ["-u", "nobody", "--", .. args], env, "/"), TimeSpan.FromMinutes(10));
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        return r;
    }

    [Fact]
    public async Task CloudarchiveBackupCronJobBacksUpOverTheNetworkAndRestores()
    {
        var s = await StartSourceAsync("cronjob-backup", "s3");
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "2", "postgres"));
        await s.Cluster.SqlAsync("insert into t select g, 'nightly ' || g from generate_series(1, 200) g");

        var job = await RunAsCronJobAsync("backup-cronjob.yaml", s, "postgres");

        Assert.True(job.ExitCode == 0, job.ToString());
        Assert.Contains("backup ", job.Stdout);
        await AssertLatestRestoresAsync(s);
    }

    [Fact]
    public async Task CloudarchiveDumpCronJobDumpsTheDatabaseAndItRestores()
    {
        var s = await StartSourceAsync("cronjob-dump", "s3");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database app");
        await s.Cluster.SqlAsync("create table orders (id int primary key, item text, placed timestamptz default now())", "app");
        await s.Cluster.SqlAsync("insert into orders (id, item) select g, 'item ' || g from generate_series(1, 1000) g", "app");
        const string hash = "select count(*) || md5(string_agg(id || item, ',' order by id)) from orders";
        var expected = await s.Cluster.SqlAsync(hash, "app");

        var job = await RunAsCronJobAsync("dump-cronjob.yaml", s, "app");

        Assert.True(job.ExitCode == 0, job.ToString());
        var restore = await CloudArchiveAsPostgres(s, "dump-restore", "latest", "--source", "app", "--dbname", "app_restored", "--create");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(expected, await s.Cluster.SqlAsync(hash, "app_restored"));
    }

    [Fact]
    public async Task CloudarchiveDrillCronJobRestoresTheNewestBackupStartsItAndRecordsAPass()
    {
        var s = await StartSourceAsync("cronjob-drill", "s3");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'drilled ' || g from generate_series(1, 300) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var scratch = Path.Combine(s.Work, "scratch");
        Directory.CreateDirectory(scratch);
        await Proc.CheckAsync(Proc.RunAsync("chown", "nobody", scratch));

        var job = await RunAsCronJobAsync("drill-cronjob.yaml", s, "postgres", new Dictionary<string, string?> { ["CLOUDARCHIVE_DRILL_DIR"] = scratch });

        Assert.True(job.ExitCode == 0, job.ToString());
        Assert.Contains(": PASSED", job.Stdout);
        Assert.Contains("pg_amcheck    passed", job.Stdout);
        Assert.Empty(Directory.GetFileSystemEntries(scratch));
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Matches("last drill +[0-9TZ]+-[0-9a-f]+ passed", status.Stdout);
    }
}
