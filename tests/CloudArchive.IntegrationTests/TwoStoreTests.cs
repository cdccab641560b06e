using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// --store-2: archiving to two stores. Every WAL file, backup and dump reaches both (copy finds nothing to add), the second
/// restores and drills alone, rows compared, and a corrupt object of the first is read from the second; a best-effort second
/// store down mid-burst does not stop archiving, shows its backlog, and catches up; a required one fails the push and
/// loses nothing; bad settings are one line, exit 2.
/// </summary>
public sealed class TwoStoreTests
{
    /// <summary>A source cluster archiving to a first store of <paramref name="firstKind"/> and, through its config file, to <paramref name="second"/>.</summary>
    private static async Task<Source> StartTwoStoreSourceAsync(string name, string firstKind, Func<string, TestStore> second, string mode)
    {
        var work = TestEnv.NewWorkDir(name);
        var first = TestStore.Create(firstKind, work);
        var b = second(Path.Combine(work, "second"));
        File.AppendAllLines(first.ConfigFile, [$"CLOUDARCHIVE_STORE_2_CONFIG={b.ConfigFile}", $"CLOUDARCHIVE_STORE_2_MODE={mode}"]);
        return await StartSourceOnAsync(null, [], work, first);
    }

    [Theory]
    [InlineData("local", "s3")]
    [InlineData("s3", "azure")]
    public async Task EverythingArchivedIsInBothStoresAndTheSecondRestoresAndDrillsAlone(string firstKind, string secondKind)
    {
        TestStore? b = null;
        var s = await StartTwoStoreSourceAsync($"two-{firstKind}-{secondKind}", firstKind, dir => b = CopyTests.SecondStore(secondKind, dir), "required");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 2000) g");
        await BackupAsync(s);
        var dump = await CloudArchiveAsPostgres(s, "dump-push", "--dbname", "postgres");
        Assert.True(dump.ExitCode == 0, dump.ToString());
        await s.Cluster.SqlAsync("insert into t select g, 'after the backup ' || g from generate_series(2001, 2600) g");
        await BackupAsync(s);
        await s.Cluster.SqlAsync("insert into t select g, 'after the second backup ' || g from generate_series(2601, 2700) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        // copy finds nothing the second store lacks, and nothing there with other content.
        var copy = await CopyTests.CopyAsync(s, b!);
        Assert.True(copy.ExitCode == 0, copy.ToString());
        Assert.Matches(@"^copied 0 objects \(0\.0 MiB\), skipped \d+ already there, 0 conflicts", copy.Stdout);
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("second store", status.Stdout);
        Assert.Contains("lacks nothing", status.Stdout);

        // Retention per store: the first keeps two full backups (the flag), the second one (its own config file's line).
        File.AppendAllLines(b!.ConfigFile, ["CLOUDARCHIVE_RETAIN_FULL=1"]);
        var expire = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "2");
        Assert.True(expire.ExitCode == 0, expire.ToString());
        Assert.Contains($"kept 2 backups", expire.Stdout);
        Assert.Contains($"objects in {b.Url}; kept 1 backups", expire.Stdout);
        var verify = await CloudArchiveAsPostgres(s, "verify", "--wal", "--dumps");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains($"objects in {s.Store.Url} (", verify.Stdout);
        Assert.Contains($"objects in {b.Url} (", verify.Stdout);
        // --json stays one document: the second store's report nested in the first's.
        var verifyJson = await CloudArchiveAsPostgres(s, "verify", "--wal", "--json");
        Assert.True(verifyJson.ExitCode == 0, verifyJson.ToString());
        using (var doc = System.Text.Json.JsonDocument.Parse(verifyJson.Stdout))
            Assert.True(doc.RootElement.GetProperty("secondStore").GetProperty("objects").GetInt64() > 0, verifyJson.Stdout);
        var afterExpire = await CloudArchiveAsPostgres(s, "status");
        Assert.True(afterExpire.Stdout.Contains("lacks nothing", StringComparison.Ordinal), afterExpire.ToString() + expire);

        // The second store alone: restore (restore_command reads it) and drill, rows compared.
        var fromB = s with { Store = b! };
        await using (var restored = await RestoreAndStartAsync(fromB, "restored-from-second", []))
            Assert.Equal(expected, await restored.SqlAsync(TableHash));
        var drill = await CloudArchiveAsPostgres(fromB, "drill", "--drill-dir", DrillTests.DrillDir(s), "--check", $"select ({TableHash}) = '{expected}'");
        Assert.True(drill.ExitCode == 0, drill.ToString());

        if (firstKind != "local") return;
        // One segment corrupt in the first store: the restore (the second store its fallback) reads it from the second, with a warning.
        var a = new LocalStore(new Uri(s.Store.Url).LocalPath, create: false);
        var corrupt = Directory.GetFiles(Path.Combine(a.Dir, "wal", "00000001"), "*.zst").Select(f => Path.GetFileName(f)[..^4])
            .Where(n => n.Length == 24).Order(StringComparer.Ordinal).Last();
        var bytes = await File.ReadAllBytesAsync(a.ObjectPath(corrupt));
        bytes[^9] ^= 0x20;
        await File.WriteAllBytesAsync(a.ObjectPath(corrupt), bytes);
        await using var fromEither = await RestoreAndStartAsync(s, "restored-from-either", []);
        Assert.Equal(expected, await fromEither.SqlAsync(TableHash));
        Assert.Contains($"reading wal/00000001/{corrupt}.zst from {b!.Url}", fromEither.ServerLog);
        var found = await CloudArchiveAsPostgres(s, "verify", "--wal");
        Assert.True(found.ExitCode == 5, found.ToString());
        Assert.Contains($"PROBLEM in {s.Store.Url}: WAL {corrupt}", found.Stdout);
        Assert.Contains($"objects in {b.Url} (", found.Stdout);
    }

    [Fact]
    public async Task ASecondStoreDownMidBurstCatchesUpInBestEffortFailsThePushWhenRequiredAndLosesNothing()
    {
        await using var proxy = new FaultProxy(TestStore.S3Endpoint, []);
        TestStore? b = null;
        var s = await StartTwoStoreSourceAsync("two-down", "local", dir =>
        {
            TestEnv.CreateDirectory(dir);
            return b = TestStore.Create("s3", dir, endpoint: proxy.Url);
        }, "best-effort");
        await using var _ = s.Cluster;
        // A short retry budget: the second store is given up on after 5 s, and left alone for as long.
        File.AppendAllLines(s.Store.ConfigFile, ["CLOUDARCHIVE_RETRY_TIMEOUT=5"]);
        var spool = Path.Combine(s.Cluster.DataDir, "pg_wal", ".cloudarchive");
        await s.Cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 1000) g");
        await BackupAsync(s);

        // Best-effort: the second store goes down mid-burst; archiving to the first goes on.
        proxy.Down = true;
        for (var round = 0; round < 4; round++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'down {round} ' || g from generate_series({2000 + round * 100}, {2099 + round * 100}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        proxy.Down = false;
        var behind = await CloudArchiveAsPostgres(s, "status", "--json", "--spool-dir", spool);
        Assert.True(behind.ExitCode == 0, behind.ToString());
        var second = System.Text.Json.JsonDocument.Parse(behind.Stdout).RootElement.GetProperty("secondStore");
        Assert.False(second.GetProperty("complete").GetBoolean(), behind.Stdout);
        Assert.True(second.GetProperty("lackingWalFiles").GetInt32() >= 4, behind.Stdout);
        Assert.True(second.GetProperty("backlogObjects").GetInt32() >= 8, behind.Stdout);
        var metrics = await CloudArchiveAsPostgres(s, "metrics", "--pgdata", s.Cluster.DataDir);
        Assert.Matches($@"cloudarchive_store_backlog_objects{{store=""{System.Text.RegularExpressions.Regex.Escape(b!.Url)}""}} [1-9]", metrics.Stdout);
        Assert.Matches(@"cloudarchive_store_lacking_wal_segments\{store=""s3://[^""]+""\} [1-9]", metrics.Stdout);

        // Back, and past the 5 s it is left alone: the next push catches the backlog up first.
        await Task.Delay(TimeSpan.FromSeconds(6));
        await s.Cluster.SqlAsync("insert into t select g, 'back ' || g from generate_series(3000, 3099) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        var caughtUp = await CloudArchiveAsPostgres(s, "status", "--spool-dir", spool);
        Assert.Contains("lacks nothing; backlog empty", caughtUp.Stdout);

        // Required: the same outage fails the push (PostgreSQL keeps the segment and retries) until the store is back.
        File.AppendAllLines(s.Store.ConfigFile, ["CLOUDARCHIVE_STORE_2_MODE=required"]);
        proxy.Down = true;
        await s.Cluster.SqlAsync("insert into t select g, 'required ' || g from generate_series(4000, 4099) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        for (var waited = 0; await s.Cluster.SqlAsync("select failed_count from pg_stat_archiver") == "0"; waited++)
        {
            Assert.True(waited < 120, "wal-push never failed while the required second store was down");
            await Task.Delay(500);
        }
        Assert.Contains("the second store is required", s.Cluster.ServerLog);
        proxy.Down = false;
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var complete = await CloudArchiveAsPostgres(s, "status", "--spool-dir", spool);
        Assert.Contains("lacks nothing; backlog empty", complete.Stdout);

        // From the second store alone: every row.
        await using (var restored = await RestoreAndStartAsync(s with { Store = b }, "restored-from-second", []))
            Assert.Equal(expected, await restored.SqlAsync(TableHash));

        // The second store deleted entirely: status says it lacks everything; the first still restores.
        var raw = EncryptionSetup.RawBackend(b);
        await foreach (var o in raw.ListAsync("", CancellationToken.None)) await raw.DeleteAsync(o.Key, CancellationToken.None);
        var gone = await CloudArchiveAsPostgres(s, "status", "--spool-dir", spool, "--exit-code");
        Assert.True(gone.ExitCode == 11, gone.ToString());
        Assert.Contains("PROBLEM second store", gone.Stdout);
        await using var fromFirst = await RestoreAndStartAsync(s, "restored-from-first", []);
        Assert.Equal(expected, await fromFirst.SqlAsync(TableHash));
    }

    [Fact]
    public async Task TheAsyncWorkerAndTheAgentArchiveToBothStores()
    {
        TestStore? b = null;
        var s = await StartTwoStoreSourceAsync("two-async", "local", dir => b = CopyTests.SecondStore("local", dir), "required");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync($"alter system set archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args} --async --log-level info'");
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        await BackupAsync(s);
        for (var i = 0; i < 6; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'async {i} ' || g from generate_series({i * 100 + 1}, {i * 100 + 100}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        Assert.Contains("by the async worker", s.Cluster.ServerLog);
        await s.Cluster.SqlAsync($"alter system set archive_command = '{TestEnv.Binary} wal-push %p {s.Store.Args} --agent --log-level debug'");
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        for (var i = 6; i < 9; i++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'agent {i} ' || g from generate_series({i * 100 + 1}, {i * 100 + 100}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
            await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        }
        Assert.Contains("push served by the agent", s.Cluster.ServerLog);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await s.Cluster.StopAsync();

        var copy = await CopyTests.CopyAsync(s, b!);
        Assert.True(copy.ExitCode == 0, copy.ToString());
        Assert.Matches(@"^copied 0 objects \(0\.0 MiB\), skipped \d+ already there, 0 conflicts", copy.Stdout);
        await using var restored = await RestoreAndStartAsync(s with { Store = b! }, "restored-from-second", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    [Fact]
    public async Task BadSecondStoreSettingsAreOneLineAndExit2()
    {
        var a = LocalStore.Create("two-bad", out var work);
        var segment = TestSegments.WriteSegment(Path.Combine(work, "src"), "000000010000000000000001", 1);
        var elsewhere = "file://" + Path.Combine(work, "second");

        Assert.Contains("--store-2-mode must be required or best-effort",
            Expect.OneLineError(await a.Cli.RunAsync("wal-push", segment, "--store-2", elsewhere, "--store-2-mode", "sometimes"), 2));
        Assert.Contains("names the store itself", Expect.OneLineError(await a.Cli.RunAsync("wal-push", segment, "--store-2", a.Url + "/"), 2));
        var config = Path.Combine(work, "second.env");
        File.WriteAllLines(config, [$"CLOUDARCHIVE_STORE={elsewhere}"]);
        File.SetUnixFileMode(config, (UnixFileMode)0b110_110_110);
        if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", config));
        Assert.Contains("writable by its group or by others", Expect.OneLineError(await a.Cli.RunAsync("wal-push", segment, "--store-2-config", config), 2));
        Assert.Contains("writable by its group or by others", Expect.OneLineError(await a.Cli.RunAsync("restore", "--to", Path.Combine(work, "r"), "--store-2-config", config), 2));
        Assert.DoesNotContain(a.VisibleFiles(), f => f.Contains("wal", StringComparison.Ordinal));
    }
}
