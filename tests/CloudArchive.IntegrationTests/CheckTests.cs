using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// cloudarchive check against a real PostgreSQL 15 primary that archives into a real S3 server: it passes when the
/// server archives into the store checked, and each way a set-up goes wrong fails its own line and the verdict (exit 11).
/// </summary>
public sealed class CheckTests
{
    private static readonly string[] Lines = ["store refuses overwrites", "server", "archive_mode", "archive_command", "WAL switch", "restore_command"];

    private static Task<ProcResult> CheckAsync(Source s, string config, params string[] more) =>
        Proc.AsPostgresAsync([TestEnv.Binary, "check", "--pgdata", s.Cluster.DataDir, "--config", config, .. more], timeout: TimeSpan.FromMinutes(2));

    private static string Line(ProcResult r, string what) =>
        r.Stdout.Split('\n').SingleOrDefault(l => l.Length > 8 && l[8..].StartsWith(what + " ", StringComparison.Ordinal)) ?? $"(no line for {what}: {r})";

    [Fact]
    public async Task CheckPassesOnlyWhenTheServerArchivesIntoThisStoreAndWhatItArchivesOpens()
    {
        var s = await StartSourceAsync("check", "s3");
        await using var _ = s.Cluster;

        var ok = await CheckAsync(s, s.Store.ConfigFile);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        foreach (var what in Lines) Assert.StartsWith("ok ", Line(ok, what));
        Assert.Contains("arrived in the store after", Line(ok, "WAL switch"));
        Assert.Contains("fetched and verified", Line(ok, "restore_command"));
        Assert.Contains("check: archiving into this store works", ok.Stdout);
        Secrets.AssertNoneIn(ok.Stdout + ok.Stderr);

        // Checked against another store than the server's: its archive_command names that one, and the switch never arrives here.
        var other = TestStore.Create("s3", TestEnv.NewWorkDir("check-other"));
        var wrong = await CheckAsync(s, other.ConfigFile, "--timeout", "3");
        Assert.Contains("check failed: archive_command, WAL switch", Expect.OneLineError(wrong, 11));
        Assert.Contains($"archives into {s.Store.Url}, not into {other.Url}", Line(wrong, "archive_command"));
        Assert.StartsWith("FAILED", Line(wrong, "WAL switch"));
        Assert.Contains("was not in", Line(wrong, "WAL switch"));

        // The server encrypts with one key; a check with another cannot open what it archives.
        var key = await EncryptionSetup.GenerateKeyAsync(s.Work, "server.key");
        var otherKey = await EncryptionSetup.GenerateKeyAsync(s.Work, "other.key");
        var serverConfig = await File.ReadAllTextAsync(s.Store.ConfigFile);
        await File.AppendAllLinesAsync(s.Store.ConfigFile, [$"CLOUDARCHIVE_ENCRYPTION_KEY_FILE={key.Path}"]);
        var checkConfig = Path.Combine(s.Work, "check-other-key.env");
        await File.WriteAllTextAsync(checkConfig, serverConfig + $"\nCLOUDARCHIVE_ENCRYPTION_KEY_FILE={otherKey.Path}\n");
        if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres", checkConfig));
        var locked = await CheckAsync(s, checkConfig);
        Assert.Contains("check failed: restore_command", Expect.OneLineError(locked, 11));
        Assert.StartsWith("ok ", Line(locked, "WAL switch"));
        Assert.StartsWith("FAILED", Line(locked, "restore_command"));
        var withKey = await CheckAsync(s, s.Store.ConfigFile);
        Assert.True(withKey.ExitCode == 0, withKey.ToString());
        Assert.Contains("decrypted with the configured key", Line(withKey, "restore_command"));
    }

    [Fact]
    public async Task AServerThatDoesNotArchiveFailsTheCheck()
    {
        var work = TestEnv.NewWorkDir("check-off");
        var store = TestStore.Create("local", work);
        await using var cluster = await PgCluster.InitAsync(Path.Combine(work, "source"), "archive_mode = off");
        await cluster.StartAsync();
        var s = new Source(work, store, cluster);

        var r = await CheckAsync(s, store.ConfigFile, "--timeout", "2");

        Assert.Contains("check failed: archive_mode, archive_command, WAL switch", Expect.OneLineError(r, 11));
        Assert.Contains("is 'off': the server archives nothing", Line(r, "archive_mode"));
        Assert.Contains("is empty", Line(r, "archive_command"));
        Assert.StartsWith("ok ", Line(r, "store refuses overwrites"));
    }
}
