namespace CloudArchive.IntegrationTests;

/// <summary>
/// PostgreSQL's own recovery tests (src/test/recovery of Debian's PostgreSQL 15 source, TAP) with cloudarchive as
/// archive_command and restore_command where they use <c>cp</c> (infra/pg-recovery-tests.sh: fetched by infra/test.sh,
/// the substitution made there). Each script must pass whole, and its servers must have restored WAL through
/// cloudarchive: a script that passed without it proves nothing of the tool. Only the scripts whose archive directory
/// they leave to the archive and restore commands are run (043 writes plain files into it itself).
/// </summary>
public sealed class PostgresRecoveryTests
{
    [Theory]
    [InlineData("002_archiving.pl")]              // a standby from the archive, promotion, history files, RECOVERYXLOG/RECOVERYHISTORY
    [InlineData("003_recovery_targets.pl")]       // recovery_target_xid/time/lsn/name, inclusive or not, from the archive
    [InlineData("020_archive_status.pl")]         // a failing archive_command, .ready and .done, archive_mode always on a standby
    [InlineData("023_pitr_prepared_xact.pl")]     // PITR over a prepared transaction
    [InlineData("024_archive_recovery.pl")]       // archive recovery refused after wal_level minimal
    [InlineData("028_pitr_timelines.pl")]         // PITR to a point on timeline 1 after a promotion archived timeline 2
    [InlineData("045_archive_restartpoint.pl")]   // restartpoints during archive recovery of many segments
    public Task TheScriptPassesWithCloudarchiveAsArchiveAndRestoreCommand(string script) => RunAsync(script, "", "");

    /// <summary>The archiving and PITR scripts again, as production runs the commands: async push with prefetch, or both through the agent.</summary>
    [Theory]
    [InlineData("002_archiving.pl", "--async", "--prefetch 4")]
    [InlineData("003_recovery_targets.pl", "--async", "--prefetch 4")]
    [InlineData("028_pitr_timelines.pl", "--async", "--prefetch 4")]
    [InlineData("002_archiving.pl", "--agent", "--agent")]
    [InlineData("003_recovery_targets.pl", "--agent", "--agent")]
    [InlineData("028_pitr_timelines.pl", "--agent", "--agent")]
    public Task TheScriptPassesWithTheCommandsOptions(string script, string pushOptions, string fetchOptions) =>
        RunAsync(script, pushOptions, fetchOptions);

    /// <summary>
    /// The archiving and timeline scripts on the S3 server (each node's store under one prefix, reached through a config
    /// file with the endpoint, the trusted CA and the credentials, as an operator would write it).
    /// </summary>
    [Theory]
    [InlineData("002_archiving.pl")]
    [InlineData("028_pitr_timelines.pl")]
    public Task TheScriptPassesOnAnS3Store(string script) => RunAsync(script, "", "", "s3");

    private static async Task RunAsync(string script, string pushOptions, string fetchOptions, string storeKind = "local")
    {
        var name = Path.GetFileNameWithoutExtension(script) + (pushOptions == "" ? "" : "-" + pushOptions.TrimStart('-').Split(' ')[0])
            + (storeKind == "local" ? "" : "-" + storeKind);
        var env = new Dictionary<string, string?>
        {
            ["CLOUDARCHIVE_TEST_BIN"] = TestEnv.Binary, ["CLOUDARCHIVE_TEST_DIR"] = TestEnv.Root,
            ["CLOUDARCHIVE_TEST_PUSH_OPTIONS"] = pushOptions, ["CLOUDARCHIVE_TEST_FETCH_OPTIONS"] = fetchOptions,
        };
        if (storeKind != "local")
        {
            // The store's config, with the credentials the tests' servers get from this process's environment elsewhere.
            var cloud = TestStore.Create(storeKind, TestEnv.NewWorkDir("recovery-tests-" + name));
            string[] credentials = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
            await File.AppendAllLinesAsync(cloud.ConfigFile, credentials.Select(v => $"{v}={Environment.GetEnvironmentVariable(v)}"));
            env["CLOUDARCHIVE_TEST_STORE_BASE"] = cloud.Url;
            env["CLOUDARCHIVE_CONFIG"] = cloud.ConfigFile;
        }
        var run = await Proc.RunAsync(Proc.Info(TestEnv.Infra("pg-recovery-tests.sh"), ["run", script, name], env), TimeSpan.FromMinutes(10));
        var logDir = Path.Combine(TestEnv.Root, "work", "recovery-tests", name, "tmp_check", "log");
        var logs = Directory.Exists(logDir) ? Directory.GetFiles(logDir, "*.log").Order().ToList() : [];
        string Tail(string file) => string.Join('\n', File.ReadLines(file).TakeLast(30));
        var context = $"{run}\n{string.Join("\n", logs.Select(f => $"--- {Path.GetFileName(f)}\n{Tail(f)}"))}";

        Assert.True(run.ExitCode == 0 && run.Stdout.Contains("Result: PASS", StringComparison.Ordinal), context);
        Assert.DoesNotContain("not ok", run.Stdout, StringComparison.Ordinal);
        // (the servers' logs; the script's own is regress_log_NAME, without .log)
        var restored = logs.Sum(f => File.ReadLines(f).Count(l => l.Contains("restored log file", StringComparison.Ordinal)));
        Assert.True(restored > 0, $"no server of {script} restored a file from the archive:\n{context}");
        // The commands the servers were given were cloudarchive's, with the options asked for (the substitution notes each one).
        var store = storeKind == "local" ? "file://" : env["CLOUDARCHIVE_TEST_STORE_BASE"] + "/";
        Assert.Contains($"cloudarchive command: {TestEnv.Binary} wal-push %p{(pushOptions == "" ? "" : " " + pushOptions)} --store {store}", run.Stdout);
        Assert.Contains($"cloudarchive command: {TestEnv.Binary} wal-fetch %f %p{(fetchOptions == "" ? "" : " " + fetchOptions)} --store {store}", run.Stdout);
        Secrets.AssertNoneIn(run.Stdout + run.Stderr);
        // What cloudarchive says when it fails unexpectedly, in any server's log (the scripts' own failures are archive_command's exit codes).
        foreach (var log in logs)
        {
            Assert.DoesNotContain("Unhandled exception", File.ReadAllText(log), StringComparison.Ordinal);
            Secrets.AssertNoneIn(File.ReadAllText(log));
        }
    }
}
