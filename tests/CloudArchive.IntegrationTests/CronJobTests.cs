using System.Diagnostics;
using System.Text.Json.Nodes;
using CloudArchive.Core.Configuration;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// The Kubernetes workloads of deploy/kubernetes cannot run here (no container engine), so each test runs exactly the
/// command and environment its container runs — read from the manifests as the API reads them (<see cref="Manifests"/>)
/// and from the example Secret — as an unprivileged user against the real S3 server and PostgreSQL over TCP, with each
/// volume mount a directory of the test's. The archive is encrypted, as the manifests declare it; the tests end with a
/// restore compared with the source.
/// </summary>
public sealed class CronJobTests
{
    private const string KeyFile = "archive.key";

    /// <summary>A container of a manifest: its command line (the image's entrypoint when it names none), literal environment and mount paths.</summary>
    private sealed record Container(List<string> CommandLine, Dictionary<string, string?> Env, List<string> Mounts);

    private static async Task<Container> ReadAsync(string file, string? name = null)
    {
        var workload = await Manifests.WorkloadAsync(file);
        var pod = Manifests.PodSpec(workload)!;
        Assert.Contains("secretRef", Manifests.Text(pod));
        var c = Assert.Single(pod["containers"]!.AsArray().Cast<JsonObject>(), c => name is null || (string?)c["name"] == name);
        static List<string> List(JsonNode? n) => (n?.AsArray() ?? []).Select(x => (string)x!).ToList();
        var command = List(c["command"]);
        List<string> commandLine = command.Count > 0 ? [.. command, .. List(c["args"])] : ["/usr/local/bin/cloudarchive", .. List(c["args"])];
        var mounts = (c["volumeMounts"]?.AsArray() ?? []).Select(m => (string)m!["mountPath"]!).ToList();
        return new Container(commandLine, Manifests.LiteralEnv(c), mounts);
    }

    /// <summary>Values for every key of the example Secret, pointing at the test servers; fails if the Secret has a key this test does not set.</summary>
    private static async Task<Dictionary<string, string?>> SecretForAsync(Source s, string database)
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
        var secret = Assert.Single(await Manifests.DeployedAsync(), d => d.Kind == "Secret" && d.Name == "cloudarchive");
        Assert.Equal(secret.Object!["stringData"]!.AsObject().Select(p => p.Key).Order(), values.Keys.Order());
        return values;
    }

    /// <summary>
    /// The archive encrypted from its start, as the manifests declare it: a key from key-generate in the source's config
    /// (its archive_command, and the test's own restores), and the pods' key volume: a directory holding a copy only the
    /// job's user reads, as the Secret volume (mode 0400, the pod's fsGroup) gives it.
    /// </summary>
    private static async Task<string> EncryptAsync(Source s)
    {
        var key = await EncryptionSetup.GenerateKeyAsync(s.Work);
        await File.AppendAllLinesAsync(s.Store.ConfigFile,
            [$"{SettingsTable.EncryptionKeyFile.Variable}={key.Path}", $"{SettingsTable.EncryptionRequired.Variable}=true"]);
        var volume = Path.Combine(s.Work, "key-volume");
        TestEnv.CreateDirectory(volume);
        File.Copy(key.Path, Path.Combine(volume, KeyFile));
        File.SetUnixFileMode(Path.Combine(volume, KeyFile), UnixFileMode.UserRead);
        await Proc.CheckAsync(Proc.RunAsync("chown", "-R", "nobody", volume));
        return volume;
    }

    /// <summary>The container's process as the pod runs it: its command, the Secret and its literal environment, each mount a directory of the test's.</summary>
    private static async Task<ProcessStartInfo> PodProcessAsync(string file, Source s, string database, IReadOnlyDictionary<string, string> volumes, string? container = null)
    {
        var c = await ReadAsync(file, container);
        var env = await SecretForAsync(s, database);
        // A mount this machine does not have becomes a directory of the test's; a variable naming a path in it follows.
        Assert.Equal(c.Mounts.Order(), volumes.Keys.Order());
        foreach (var (k, v) in c.Env)
            env[k] = volumes.Where(m => v is not null && (v == m.Key || v.StartsWith(m.Key + "/", StringComparison.Ordinal)))
                .Select(m => m.Value + v![m.Key.Length..]).FirstOrDefault() ?? v;
        // The test server's certificate is self-signed: trusted as an operator with a private CA would add it to the Secret.
        env[SettingsTable.S3CaFile.Variable] = TestStore.CaFile;
        var args = c.CommandLine.Select(a => a.Replace("/usr/local/bin/cloudarchive", TestEnv.Binary, StringComparison.Ordinal))
            .Select(a => volumes.Aggregate(a, (text, m) => text.Replace(m.Key + "/", m.Value + "/", StringComparison.Ordinal))).ToList();
        // The pod runs as a non-root user with no access to the data directory; so does this.
        return Proc.Info("runuser", ["-u", "nobody", "--", .. args], env, "/");
    }

    private static async Task<ProcResult> RunAsCronJobAsync(string file, Source s, string database, IReadOnlyDictionary<string, string> volumes)
    {
        var r = await Proc.RunAsync(await PodProcessAsync(file, s, database, volumes), TimeSpan.FromMinutes(10));
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        return r;
    }

    private static Dictionary<string, string> Key(string volume) => new() { ["/etc/cloudarchive/key"] = volume };

    [Fact]
    public async Task CloudarchiveBackupCronJobBacksUpOverTheNetworkAndRestores()
    {
        var s = await StartSourceAsync("cronjob-backup", "s3");
        await using var _ = s.Cluster;
        var key = await EncryptAsync(s);
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "2", "postgres"));
        await s.Cluster.SqlAsync("insert into t select g, 'nightly ' || g from generate_series(1, 200) g");

        var job = await RunAsCronJobAsync("backup-cronjob.yaml", s, "postgres", Key(key));

        Assert.True(job.ExitCode == 0, job.ToString());
        Assert.Contains("backup ", job.Stdout);
        await AssertLatestRestoresAsync(s);
    }

    /// <summary>
    /// The backup CronJob of an encrypted archive in a pod whose key Secret is not mounted: it refuses before it reads or
    /// writes anything (exit 2, one line naming the file and the mount), and the store holds exactly what it held.
    /// </summary>
    [Fact]
    public async Task TheBackupCronJobRefusesToStartWithoutItsKeyAndWritesNothing()
    {
        var s = await StartSourceAsync("cronjob-nokey", "s3");
        await using var _ = s.Cluster;
        await EncryptAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'kept ' || g from generate_series(1, 100) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var raw = EncryptionSetup.RawBackend(s.Store);
        var before = await raw.ListAsync("", CancellationToken.None).Select(o => $"{o.Key} {o.Size}").ToListAsync();
        Assert.NotEmpty(before);
        var unmounted = Path.Combine(s.Work, "no-key-volume");

        var job = await RunAsCronJobAsync("backup-cronjob.yaml", s, "postgres", Key(unmounted));

        var line = Expect.OneLineError(job, 2);
        Assert.Equal($"cloudarchive: error: encryption key file {unmounted}/{KeyFile} does not exist: is the volume (or Kubernetes Secret) that holds it " +
            "mounted? Nothing is read or written without it", line);
        Assert.Empty(job.Stdout);
        Assert.Equal(before, await raw.ListAsync("", CancellationToken.None).Select(o => $"{o.Key} {o.Size}").ToListAsync());
        var list = await CloudArchiveAsPostgres(s, "backup-list");
        Assert.True(list.ExitCode == 0 && list.Stdout.Trim() == "no backups", list.ToString());
    }

    [Fact]
    public async Task CloudarchiveDumpCronJobDumpsTheDatabaseAndItRestores()
    {
        var s = await StartSourceAsync("cronjob-dump", "s3");
        await using var _ = s.Cluster;
        var key = await EncryptAsync(s);
        await s.Cluster.SqlAsync("create database app");
        await s.Cluster.SqlAsync("create table orders (id int primary key, item text, placed timestamptz default now())", "app");
        await s.Cluster.SqlAsync("insert into orders (id, item) select g, 'item ' || g from generate_series(1, 1000) g", "app");
        const string hash = "select count(*) || md5(string_agg(id || item, ',' order by id)) from orders";
        var expected = await s.Cluster.SqlAsync(hash, "app");

        var job = await RunAsCronJobAsync("dump-cronjob.yaml", s, "app", Key(key));

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
        var key = await EncryptAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'drilled ' || g from generate_series(1, 300) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var scratch = Path.Combine(s.Work, "scratch");
        TestEnv.CreateDirectory(scratch);
        await Proc.CheckAsync(Proc.RunAsync("chown", "nobody", scratch));

        var job = await RunAsCronJobAsync("drill-cronjob.yaml", s, "postgres", new Dictionary<string, string> { ["/drill"] = scratch, ["/etc/cloudarchive/key"] = key });

        Assert.True(job.ExitCode == 0, job.ToString());
        Assert.Contains(": PASSED", job.Stdout);
        Assert.Contains("pg_amcheck    passed", job.Stdout);
        Assert.Empty(Directory.GetFileSystemEntries(scratch));
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Matches("last drill +[0-9TZ]+-[0-9a-f]+ passed", status.Stdout);
    }

    /// <summary>
    /// The metrics Deployment's loop publishes the archive's state into the volume node_exporter serves: a whole file
    /// (renamed into place), with cloudarchive_up 1 and the newest backup; the loop keeps running until stopped.
    /// </summary>
    [Fact]
    public async Task TheMetricsDeploymentsLoopPublishesTheArchivesStateForTheExporter()
    {
        var s = await StartSourceAsync("metrics-deploy", "s3");
        await using var _ = s.Cluster;
        var key = await EncryptAsync(s);
        await BackupAsync(s);
        var published = Path.Combine(s.Work, "metrics-volume");
        TestEnv.CreateDirectory(published);
        await Proc.CheckAsync(Proc.RunAsync("chown", "nobody", published));
        var psi = await PodProcessAsync("metrics-deployment.yaml", s, "postgres",
            new Dictionary<string, string> { ["/metrics"] = published, ["/etc/cloudarchive/key"] = key }, "metrics");
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;

        using var loop = Process.Start(psi)!;
        var file = Path.Combine(published, "cloudarchive.prom");
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!File.Exists(file) && DateTime.UtcNow < deadline && !loop.HasExited) await Task.Delay(200);
            Assert.True(File.Exists(file), $"no {file} after 60 s; the loop {(loop.HasExited ? "ended: " + await loop.StandardError.ReadToEndAsync() : "runs")}");
            Assert.False(loop.HasExited, "the loop ended after one run");
        }
        finally
        {
            loop.Kill(entireProcessTree: true);
            await loop.WaitForExitAsync();
        }

        var text = await File.ReadAllTextAsync(file);
        Secrets.AssertNoneIn(text);
        var samples = await OperationsTests.PrometheusSamplesAsync(text);
        Assert.Equal(1, samples[$"cloudarchive_up{{store={s.Store.Url}}}"]);
        Assert.Equal(1, samples[$"cloudarchive_backups{{store={s.Store.Url}}}"]);
        Assert.Equal(["cloudarchive.prom"], Directory.GetFiles(published).Select(Path.GetFileName));
    }
}
