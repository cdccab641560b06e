using System.Text.Json;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// copy --from A --to B: a second store brought up to date with the archive, and restored and drilled from alone, rows compared;
/// what B already holds is skipped, what it holds with other content is reported and left, a corrupt object of A is
/// not copied, an encrypted archive is copied without its key and restores from B with it.
/// </summary>
public sealed class CopyTests
{
    /// <summary>A second store of <paramref name="kind"/> in <paramref name="dir"/>, described by its own config file, not made yet.</summary>
    internal static TestStore SecondStore(string kind, string dir)
    {
        TestEnv.CreateDirectory(dir);
        if (TestEnv.IsRoot) Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", dir)).GetAwaiter().GetResult();
        if (kind != "local") return TestStore.Create(kind, dir);
        // A local store copy makes itself (store-init would give it an archive id of its own).
        var config = Path.Combine(dir, "cloudarchive.env");
        var url = "file://" + Path.Combine(dir, "store");
        File.WriteAllLines(config, [$"CLOUDARCHIVE_STORE={url}", "CLOUDARCHIVE_RETRY_TIMEOUT=20"]);
        File.SetUnixFileMode(config, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (TestEnv.IsRoot) Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", config)).GetAwaiter().GetResult();
        return new TestStore(kind, url, config);
    }

    internal static Task<ProcResult> CopyAsync(Source s, TestStore to, params string[] args) =>
        CloudArchiveAsPostgres(s, ["copy", "--to-config", to.ConfigFile, .. args]);

    [Theory]
    [InlineData("local", "s3")]
    [InlineData("s3", "azure")]
    public async Task ASecondStoreCopiedFromTheFirstRestoresAloneAndASecondRunCopiesNothing(string fromKind, string toKind)
    {
        var s = await StartSourceAsync($"copy-{fromKind}-{toKind}", fromKind);
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before the full backup ' || g from generate_series(1, 2000) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("update t set note = 'changed ' || id where id % 7 = 0");
        await IncrementalBackupTests.BackupOfTypeAsync(s, "incr");
        var dump = await CloudArchiveAsPostgres(s, "dump-push", "--dbname", "postgres");
        Assert.True(dump.ExitCode == 0, dump.ToString());
        await s.Cluster.SqlAsync("insert into t select g, 'after the backups ' || g from generate_series(2001, 2500) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var b = SecondStore(toKind, Path.Combine(s.Work, "second"));

        var first = await CopyAsync(s, b);
        var second = await CopyAsync(s, b, "--json");

        Assert.True(first.ExitCode == 0, first.ToString());
        Secrets.AssertNoneIn(first.Stdout + first.Stderr);
        var copied = int.Parse(System.Text.RegularExpressions.Regex.Match(first.Stdout, @"^copied (\d+) objects \([0-9.]+ MiB\), skipped 0 already there, 0 conflicts",
            System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(copied > 10, first.ToString());
        Assert.True(second.ExitCode == 0, second.ToString());
        var view = JsonDocument.Parse(second.Stdout).RootElement;
        Assert.Equal(0, view.GetProperty("copied").GetInt64());
        Assert.Equal(copied, view.GetProperty("skipped").GetInt64());
        Assert.Equal(0, view.GetProperty("conflicts").GetArrayLength());

        // From B alone: the chain restored and started (restore_command reads B), the dump and every WAL file verified.
        var fromB = s with { Store = b };
        var verify = await CloudArchiveAsPostgres(fromB, "verify", "--wal", "--dumps");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        await using var restored = await RestoreAndStartAsync(fromB, "restored-from-b", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        var drill = await CloudArchiveAsPostgres(fromB, "drill", "--drill-dir", DrillTests.DrillDir(s), "--check", $"select ({TableHash}) = '{expected}'");
        Assert.True(drill.ExitCode == 0, drill.ToString());
    }

    [Fact]
    public async Task AnObjectPlantedInTheSecondStoreIsReportedAndLeftACorruptOneOfTheFirstIsNotCopied()
    {
        var a = LocalStore.Create("copy-planted", out var work);
        for (var i = 1; i <= 4; i++)
            await a.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "src"), $"0000000100000000000000{i:X2}", i));
        var b = SecondStore("local", Path.Combine(work, "second"));
        var bStore = new LocalStore(Path.Combine(work, "second", "store"), create: false);
        await a.Cli.OkAsync("copy", "--to", b.Url, "--jobs", "2");
        var planted = "000000010000000000000005";
        await a.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "src"), planted, 5));
        bStore.Plant($"wal/00000001/{planted}.zst", "planted"u8.ToArray(), new Dictionary<string, string>());
        var plantedBytes = await File.ReadAllBytesAsync(bStore.ObjectPath(planted));

        var conflict = await a.Cli.RunAsync("copy", "--to", b.Url);

        Assert.True(conflict.ExitCode == 3, conflict.ToString());
        Assert.Contains($"CONFLICT wal/00000001/{planted}.zst in {b.Url}", conflict.Stdout);
        // Four segments and their records, and the store's first-cluster stamp.
        Assert.True(conflict.Stdout.Contains("copied 0 objects (0.0 MiB), skipped 9 already there, 1 conflicts", StringComparison.Ordinal), conflict.ToString());
        Assert.Equal(plantedBytes, await File.ReadAllBytesAsync(bStore.ObjectPath(planted)));
        Assert.False(File.Exists(bStore.RecordPath(planted)));

        // A corrupt object of A: not copied, nor its record; the rest is.
        var corrupt = "000000010000000000000006";
        await a.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "src"), corrupt, 6));
        await a.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "src"), "000000010000000000000007", 7));
        var bytes = await File.ReadAllBytesAsync(a.ObjectPath(corrupt));
        bytes[^9] ^= 0x20;
        await File.WriteAllBytesAsync(a.ObjectPath(corrupt), bytes);

        var run = await a.Cli.RunAsync("copy", "--to", b.Url);

        Assert.True(run.ExitCode == 5, run.ToString());
        Assert.Contains($"CORRUPT wal/00000001/{corrupt}.zst in {a.Url}", run.Stdout);
        Assert.True(run.Stdout.Contains("copied 2 objects", StringComparison.Ordinal), run.ToString());
        Assert.False(File.Exists(bStore.ObjectPath(corrupt)));
        Assert.False(File.Exists(bStore.RecordPath(corrupt)));
        Assert.True(File.Exists(bStore.RecordPath("000000010000000000000007")));

        // A store of another archive (its own archive id) is refused before anything is written.
        var other = new LocalStore(Path.Combine(work, "other"));
        var refused = await a.Cli.RunAsync("copy", "--to", other.Url);
        Assert.Contains("is another archive", Expect.OneLineError(refused, 3));
        Assert.Empty(other.VisibleFiles());
    }

    /// <summary>--to-config's AWS_* keys are the second store's alone: used instead of the environment's, and never printed.</summary>
    [Fact]
    public async Task TheSecondStoresOwnCredentialsReachIt()
    {
        var a = LocalStore.Create("copy-credentials", out var work);
        await a.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "src"), "000000010000000000000001", 1));
        var b = SecondStore("s3", Path.Combine(work, "second"));
        var id = Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID");
        const string wrongSecret = "not-the-secret-5d1e0c7a9b";
        var wrong = Path.Combine(work, "second", "wrong.env");
        await File.WriteAllLinesAsync(wrong, [.. await File.ReadAllLinesAsync(b.ConfigFile), $"AWS_ACCESS_KEY_ID={id}", $"AWS_SECRET_ACCESS_KEY={wrongSecret}"]);
        File.SetUnixFileMode(wrong, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", wrong));

        // The environment holds the right keys, the file a wrong secret: the file's are the ones used.
        var refused = await a.Cli.RunAsync("copy", "--to-config", wrong);
        Expect.Exit(refused, 4);
        Assert.DoesNotContain(wrongSecret, refused.Stdout + refused.Stderr);
        // The environment holds none, the file the right ones.
        await File.AppendAllLinesAsync(b.ConfigFile, [$"AWS_ACCESS_KEY_ID={id}", $"AWS_SECRET_ACCESS_KEY={Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY")}"]);
        var copied = await a.Cli.RunAsync(["copy", "--to-config", b.ConfigFile],
            new Dictionary<string, string?> { ["AWS_ACCESS_KEY_ID"] = null, ["AWS_SECRET_ACCESS_KEY"] = null }, null);
        Assert.True(copied.ExitCode == 0, copied.ToString());
        Assert.Contains("copied 3 objects", copied.Stdout);
        Secrets.AssertNoneIn(copied.Stdout + copied.Stderr);
    }

    [Fact]
    public async Task AnEncryptedArchiveIsCopiedWithoutItsKeyAndRestoresFromTheSecondStoreWithIt()
    {
        var s = await StartSourceAsync("copy-encrypted", "local");
        await using var _ = s.Cluster;
        var key = await EncryptionSetup.GenerateKeyAsync(s.Work);
        var plainConfig = Path.Combine(s.Work, "copy.env");
        File.Copy(s.Store.ConfigFile, plainConfig);
        if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", plainConfig));
        await File.AppendAllLinesAsync(s.Store.ConfigFile, [$"CLOUDARCHIVE_ENCRYPTION_KEY_FILE={key.Path}"]);
        await s.Cluster.SqlAsync("insert into t select g, 'secret ' || g from generate_series(1, 1500) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'later ' || g from generate_series(1501, 1800) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var b = SecondStore("s3", Path.Combine(s.Work, "second"));

        // The copy job has no key: it moves ciphertext.
        var copy = await Proc.AsPostgresAsync([TestEnv.Binary, "copy", "--config", plainConfig, "--to-config", b.ConfigFile]);

        Assert.True(copy.ExitCode == 0, copy.ToString());
        Assert.Matches(@"; \d+ encrypted objects copied unchecked \(no key given\)", copy.Stdout);
        var raw = EncryptionSetup.RawBackend(b);
        await foreach (var item in raw.ListAsync("wal/", CancellationToken.None))
            Assert.True((await EncryptionSetup.ReadAllAsync(raw, item.Key)).AsSpan().StartsWith("CAENCv2\n"u8), item.Key);
        await File.AppendAllLinesAsync(b.ConfigFile, [$"CLOUDARCHIVE_ENCRYPTION_KEY_FILE={key.Path}"]);
        await using var restored = await RestoreAndStartAsync(s with { Store = b }, "restored-from-b", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }
}
