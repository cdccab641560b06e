using System.Text;
using System.Text.Json.Nodes;
using System.Text.Json;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>status, verify and expire on real archives made by a real PostgreSQL 15.</summary>
public sealed class OperationsTests
{
    private static async Task SwitchAndWriteAsync(PgCluster c, int from, int count)
    {
        await c.SqlAsync($"insert into t select g, 'row ' || g from generate_series({from}, {from + count - 1}) g");
        await c.SqlAsync("select pg_switch_wal()");
    }

    private static string StoreDir(Source s) => new Uri(s.Store.Url).LocalPath;

    /// <summary>The samples of a Prometheus text exposition, read by the Prometheus client's own parser: "name{label=value,...}" → value.</summary>
    internal static async Task<Dictionary<string, double>> PrometheusSamplesAsync(string exposition)
    {
        const string Script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    print(f"{s.name}{{{labels}}}\t{s.value!r}")
            """;
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", ["-c", Script])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        await p.StandardInput.WriteAsync(exposition);
        p.StandardInput.Close();
        var output = await p.StandardOutput.ReadToEndAsync();
        var error = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"the Prometheus parser refused the output: {error}\n{exposition}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t'))
            .ToDictionary(f => f[0], f => double.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task MetricsOfAStoreThatCannotBeReadSayUpZeroAndExitNonZero()
    {
        var work = TestEnv.NewWorkDir("metrics-down");
        var r = await Cli.RunBareAsync(["metrics", "--store", "file://" + Path.Combine(work, "no-such-store")]);
        Assert.Equal(4, r.ExitCode);
        var m = await PrometheusSamplesAsync(r.Stdout);
        Assert.Equal(0, m[$"cloudarchive_up{{store=file://{Path.Combine(work, "no-such-store")}}}"]);
        Assert.Single(r.StderrLines);
    }

    [Fact]
    public async Task StatusShowsTheWindowTheTimelinesAndTheGap()
    {
        var s = await StartSourceAsync("status");
        await using var _ = s.Cluster;
        var first = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 1, 100);
        await SwitchAndWriteAsync(s.Cluster, 101, 100);
        await SwitchAndWriteAsync(s.Cluster, 201, 100);
        await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 301, 100);
        var third = await BackupAsync(s);
        await s.Cluster.SqlAsync("select pg_create_restore_point('fork')");
        await SwitchAndWriteAsync(s.Cluster, 401, 100);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        // A second timeline: recovered to the fork point and promoted, archiving to the same store.
        var tl2 = await RestoreAndStartAsync(s, "tl2", ["--target-name", "fork"], archive: true);
        await SwitchAndWriteAsync(tl2, 1001, 100);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(tl2);
        await tl2.StopAsync();
        // A gap between the first and the second backup.
        var records = Directory.GetFiles(Path.Combine(StoreDir(s), "manifest", "wal", "00000001"), "????????????????????????.json").Order().ToList();
        var firstRecord = JsonDocument.Parse(LocalStore.Read(Path.Combine(StoreDir(s), "manifest", "backups", first + ".json")).Content).RootElement;
        var stopSegment = firstRecord.GetProperty("stopWalFile").GetString();
        var victim = records.Select(r => Path.GetFileName(r)[..24]).First(n => string.CompareOrdinal(n, stopSegment) > 0);
        File.Delete(Path.Combine(StoreDir(s), "manifest", "wal", "00000001", victim + ".json"));
        File.Delete(Path.Combine(StoreDir(s), "wal", "00000001", victim + ".zst"));

        var text = await CloudArchiveAsPostgres(s, "status");
        var json = await CloudArchiveAsPostgres(s, "status", "--json");

        Assert.True(text.ExitCode == 0, text.ToString());
        // For a monitor: the gap is a problem, so --exit-code exits 11. The newest backup itself verifies ("latest").
        Assert.Equal(11, (await CloudArchiveAsPostgres(s, "status", "--exit-code")).ExitCode);
        var latest = await CloudArchiveAsPostgres(s, "verify", "--backup", "latest");
        Assert.True(latest.ExitCode == 0, latest.ToString());
        Assert.Contains($"(end of backup {first})", text.Stdout);
        Assert.Contains("timeline 2)", text.Stdout);
        Assert.Contains($"GAP {victim} - {victim}", text.Stdout);
        Assert.Contains("backups        3", text.Stdout);
        var doc = JsonDocument.Parse(json.Stdout).RootElement;
        Assert.Equal(first, doc.GetProperty("pitrWindow").GetProperty("earliestBackup").GetString());
        Assert.Equal(2, doc.GetProperty("pitrWindow").GetProperty("latestTimeline").GetInt32());
        Assert.Equal(third, doc.GetProperty("backups")[0].GetProperty("id").GetString());
        Assert.Equal(3, doc.GetProperty("backups").GetArrayLength());
        var timelines = doc.GetProperty("timelines").EnumerateArray().ToList();
        Assert.Equal([1, 2], timelines.Select(t => t.GetProperty("timeline").GetInt32()));
        Assert.Equal(victim, Assert.Single(timelines[0].GetProperty("gaps").EnumerateArray()).GetProperty("first").GetString());
        Assert.True(DateTimeOffset.Parse(doc.GetProperty("pitrWindow").GetProperty("latest").GetString()!) >
                    DateTimeOffset.Parse(doc.GetProperty("pitrWindow").GetProperty("earliest").GetString()!));
        Assert.Contains(doc.GetProperty("problems").EnumerateArray(), p => p.GetString()!.Contains(victim, StringComparison.Ordinal));

        // metrics says the same, in a form Prometheus's own parser reads.
        var metrics = await CloudArchiveAsPostgres(s, "metrics", "--pgdata", s.Cluster.DataDir);
        Assert.True(metrics.ExitCode == 0, metrics.ToString());
        var m = await PrometheusSamplesAsync(metrics.Stdout);
        var store = s.Store.Url.TrimEnd('/');
        Assert.Equal(1, m[$"cloudarchive_up{{store={store}}}"]);
        Assert.Equal(3, m[$"cloudarchive_backups{{store={store}}}"]);
        Assert.Equal(0, m[$"cloudarchive_dumps{{store={store}}}"]);
        Assert.Equal(1, m[$"cloudarchive_wal_gaps{{store={store},timeline=1}}"]);
        Assert.Equal(0, m[$"cloudarchive_wal_gaps{{store={store},timeline=2}}"]);
        Assert.Equal(timelines[0].GetProperty("segments").GetInt32(), m[$"cloudarchive_wal_segments{{store={store},timeline=1}}"]);
        Assert.Equal(DateTimeOffset.Parse(doc.GetProperty("pitrWindow").GetProperty("earliest").GetString()!).ToUnixTimeSeconds(),
            m[$"cloudarchive_pitr_window_start_timestamp_seconds{{store={store}}}"]);
        Assert.Equal(doc.GetProperty("backups")[0].GetProperty("storedSize").GetInt64(), m[$"cloudarchive_newest_backup_stored_bytes{{store={store}}}"]);
        Assert.InRange(m[$"cloudarchive_last_archived_age_seconds{{store={store}}}"], 0, 600);
        Assert.Equal(Directory.GetFiles(Path.Combine(StoreDir(s), "wal"), "*.zst", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length),
            m[$"cloudarchive_wal_stored_bytes{{store={store}}}"]);
        Assert.Equal(Directory.GetFiles(Path.Combine(s.Cluster.DataDir, "pg_wal", "archive_status"), "*.ready").Length,
            m[$"cloudarchive_ready_segments{{store={store}}}"]);
        Assert.Equal(0, m[$"cloudarchive_async_worker_running{{store={store}}}"]);

        // The newest backup loses its last segment, and someone plants a record that does not parse: status still
        // shows the whole archive, marks the unrestorable backup with its reason, and lists the bad record.
        var thirdRecord = JsonDocument.Parse(LocalStore.Read(Path.Combine(StoreDir(s), "manifest", "backups", third + ".json")).Content).RootElement;
        var thirdStop = thirdRecord.GetProperty("stopWalFile").GetString()!;
        File.Delete(Path.Combine(StoreDir(s), "manifest", "wal", "00000001", thirdStop + ".json"));
        File.Delete(Path.Combine(StoreDir(s), "wal", "00000001", thirdStop + ".zst"));
        new LocalStore(StoreDir(s), create: false).Plant("manifest/backups/20261125T235959Z-f0f0f0.json", "{ not json"u8.ToArray(), []);

        text = await CloudArchiveAsPostgres(s, "status");
        json = await CloudArchiveAsPostgres(s, "status", "--json");

        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("UNRESTORABLE", text.Stdout.Split('\n').Single(l => l.Contains(third, StringComparison.Ordinal) && l.Contains("ended", StringComparison.Ordinal)));
        Assert.Contains("20261125T235959Z-f0f0f0", text.Stdout);
        // Nor does the bad record stop a restore from the others: plan passes it over and says so.
        var plan = await CloudArchiveAsPostgres(s, "plan", "--backup", first, "--target-immediate");
        Assert.True(plan.ExitCode == 0, plan.ToString());
        Assert.Contains("passed over a record that cannot be read: backup record manifest/backups/20261125T235959Z-f0f0f0.json", plan.Stdout);
        doc = JsonDocument.Parse(json.Stdout).RootElement;
        var newest = doc.GetProperty("backups")[0];
        Assert.Equal(third, newest.GetProperty("id").GetString());
        Assert.False(newest.GetProperty("restorable").GetBoolean());
        Assert.Contains(thirdStop, newest.GetProperty("problem").GetString());
        Assert.True(doc.GetProperty("backups")[1].GetProperty("restorable").GetBoolean());
        Assert.Equal(first, doc.GetProperty("pitrWindow").GetProperty("earliestBackup").GetString());
    }

    [Fact]
    public async Task VerifyNamesAFlippedByteAMissingSegmentAndATruncatedBackupFile()
    {
        var s = await StartSourceAsync("verify");
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "2", "postgres"));
        var id = await BackupAsync(s);
        for (var i = 0; i < 4; i++) await SwitchAndWriteAsync(s.Cluster, i * 100 + 1, 100);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        var clean = await CloudArchiveAsPostgres(s, "verify", "--wal");
        Assert.True(clean.ExitCode == 0, clean.ToString());
        Assert.Contains("all good", clean.Stdout);
        // Run without a terminal (as from cron), the count is still of what was read: never "verified 0 objects".
        var count = System.Text.RegularExpressions.Regex.Match(clean.Stdout, @"verified (\d+) objects");
        Assert.True(count.Success && int.Parse(count.Groups[1].Value) > 2, clean.Stdout);

        var walDir = Path.Combine(StoreDir(s), "wal", "00000001");
        var segments = Directory.GetFiles(walDir, "????????????????????????.zst").Order().ToList();
        var flipped = segments[^1];
        var bytes = File.ReadAllBytes(flipped);
        bytes[^20] ^= 0xFF;
        File.WriteAllBytes(flipped, bytes);
        var missing = segments[^2];
        File.Delete(missing);
        var bundle = Directory.GetFiles(Path.Combine(StoreDir(s), "backups", id, "data"), "*.tar.zst").Order().First();
        using (var f = new FileStream(bundle, FileMode.Open)) f.SetLength(f.Length / 2);

        var r = await CloudArchiveAsPostgres(s, "verify", "--wal");

        Assert.Equal(5, r.ExitCode);
        Assert.Contains(Path.GetFileName(flipped)[..24], r.Stdout);
        Assert.Contains(Path.GetFileName(missing)[..24], r.Stdout);
        Assert.Contains(Path.GetFileName(bundle), r.Stdout);
        Assert.Equal(3, r.Stdout.Split('\n').Count(l => l.StartsWith("PROBLEM", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task ExpireKeepsTwoOfThreeBackupsAndOnlyTheWalTheyNeed()
    {
        var s = await StartSourceAsync("expire");
        await using var _ = s.Cluster;
        var oldest = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 1, 100);
        await SwitchAndWriteAsync(s.Cluster, 101, 100);
        var middle = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 201, 100);
        var newest = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 301, 100);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var middleStart = JsonDocument.Parse(LocalStore.Read(Path.Combine(StoreDir(s), "manifest", "backups", middle + ".json")).Content)
            .RootElement.GetProperty("startWalFile").GetString()!;
        // Someone who can write to the store plants one full backup record dated 2999, starting at the end of the WAL: were it
        // counted, --retain-full 2 would keep it and the newest, and take the middle backup and the WAL it needs.
        const string planted = "29991231T000000Z-ffffff";
        var forged = JsonNode.Parse(LocalStore.Read(Path.Combine(StoreDir(s), "manifest", "backups", newest + ".json")).Content.Span)!.AsObject();
        var lastWal = Directory.GetFiles(Path.Combine(StoreDir(s), "manifest", "wal", "00000001"), "????????????????????????.json").Max()!;
        forged["id"] = planted;
        forged["startTime"] = "2999-12-31T00:00:00+00:00";
        forged["stopTime"] = "2999-12-31T00:00:00+00:00";
        forged["startWalFile"] = Path.GetFileNameWithoutExtension(lastWal);
        forged["stopWalFile"] = Path.GetFileNameWithoutExtension(lastWal);
        forged["bundles"] = new JsonArray();
        new LocalStore(StoreDir(s), create: false).Plant($"manifest/backups/{planted}.json", Encoding.UTF8.GetBytes(forged.ToJsonString()), []);
        string[] Files() => Directory.GetFiles(StoreDir(s), "*", SearchOption.AllDirectories).Order().ToArray();
        var before = Files();

        var dry = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "2", "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Contains($"would remove manifest/backups/{oldest}.json", dry.Stdout);
        Assert.Equal(before, Files());

        var r = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "2");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"PROBLEM backup {planted}: it ends at 2999-12-31 00:00:00Z, in the future; not counted, not removed", r.Stdout);
        Assert.Contains($"backup {planted} does not fit the archive", (await CloudArchiveAsPostgres(s, "status")).Stdout);
        var list = (await CloudArchiveAsPostgres(s, "backup-list")).Stdout;
        Assert.DoesNotContain(oldest, list);
        Assert.Contains(middle, list);
        Assert.Contains(newest, list);
        // One order everywhere: newest first, in the text and in the JSON.
        Assert.True(list.IndexOf(newest, StringComparison.Ordinal) < list.IndexOf(middle, StringComparison.Ordinal), list);
        var json = System.Text.Json.JsonDocument.Parse((await CloudArchiveAsPostgres(s, "backup-list", "--json")).Stdout).RootElement;
        Assert.Equal(new[] { newest, middle }, json.EnumerateArray().Select(b => b.GetProperty("id").GetString()!).Where(id => id != planted).ToArray());
        var remaining = Directory.GetFiles(Path.Combine(StoreDir(s), "wal", "00000001"), "????????????????????????.zst").Select(f => Path.GetFileName(f)[..24]).Order().ToList();
        Assert.Equal(middleStart, remaining[0]);
        Assert.False(Directory.Exists(Path.Combine(StoreDir(s), "backups", oldest)) && Directory.EnumerateFiles(Path.Combine(StoreDir(s), "backups", oldest), "*", SearchOption.AllDirectories).Any(f => !Path.GetFileName(f).StartsWith('.')));

        foreach (var id in new[] { middle, newest })
        {
            await using var restored = await RestoreAndStartAsync(s, "restored-" + id, ["--backup", id]);
            Assert.Equal(expected, await restored.SqlAsync(TableHash));
            await restored.StopAsync();
        }
    }

    [Fact]
    public async Task DumpsAreShownVerifiedAndExpiredPerDatabase()
    {
        var s = await StartSourceAsync("ops-dumps");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database app");
        await s.Cluster.SqlAsync("create table a (id int)", "app");
        var ids = new List<string>();
        foreach (var db in new[] { "app", "postgres", "app" })
        {
            var r = await CloudArchiveAsPostgres(s, "dump-push", "--dbname", db);
            Assert.True(r.ExitCode == 0, r.ToString());
            var list = JsonDocument.Parse((await CloudArchiveAsPostgres(s, "dump-list", "--json")).Stdout).RootElement;
            ids.Add(list.EnumerateArray().Select(d => d.GetProperty("id").GetString()!).Except(ids).Single());
        }

        var status = await CloudArchiveAsPostgres(s, "status", "--json");
        Assert.Equal(3, JsonDocument.Parse(status.Stdout).RootElement.GetProperty("dumps").GetArrayLength());
        var metrics = await PrometheusSamplesAsync((await CloudArchiveAsPostgres(s, "metrics")).Stdout);
        Assert.InRange(metrics[$"cloudarchive_newest_dump_age_seconds{{store={s.Store.Url.TrimEnd('/')}}}"], 0, 600);
        Assert.Equal(0, (await CloudArchiveAsPostgres(s, "verify", "--dumps")).ExitCode);

        var expire = await CloudArchiveAsPostgres(s, "expire", "--retain-dumps", "1");
        Assert.True(expire.ExitCode == 0, expire.ToString());
        var left = JsonDocument.Parse((await CloudArchiveAsPostgres(s, "dump-list", "--json")).Stdout).RootElement
            .EnumerateArray().Select(d => d.GetProperty("id").GetString()).Order().ToList();
        Assert.Equal(new[] { ids[1], ids[2] }.Order(), left);

        // A flipped byte in the newest dump of app is found and named.
        var dumpFile = Directory.GetFiles(Path.Combine(StoreDir(s), "dumps", ids[2]), "*", SearchOption.AllDirectories).Single(f => !Path.GetFileName(f).StartsWith('.'));
        var bytes = File.ReadAllBytes(dumpFile);
        bytes[^10] ^= 0xFF;
        File.WriteAllBytes(dumpFile, bytes);
        var verify = await CloudArchiveAsPostgres(s, "verify", "--dumps");
        Assert.Equal(5, verify.ExitCode);
        Assert.Contains(ids[2], verify.Stdout);
    }

    [Fact]
    public async Task ABackupWhoseRecordTheStoreKeepsKeepsItsDataAndWal()
    {
        var s = await StartSourceAsync("expire-record-locked");
        await using var _ = s.Cluster;
        var oldest = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 1, 100);
        await BackupAsync(s);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        // The records cannot be deleted (an object lock on the manifest): the oldest backup stays listed.
        var records = Path.Combine(StoreDir(s), "manifest", "backups");
        await Proc.CheckAsync(Proc.RunAsync("chown", "root:root", records));
        await Proc.CheckAsync(Proc.RunAsync("chmod", "0755", records));

        var r = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "1");

        Assert.Equal(4, r.ExitCode);
        Assert.Contains($"REFUSED manifest/backups/{oldest}.json", r.Stdout);
        Assert.DoesNotContain($"removed backups/{oldest}/", r.Stdout);
        Assert.Contains($"keep backup {oldest}", r.Stdout);
        // Still listed, so still restorable: its bundles and its WAL are all there.
        var plan = await CloudArchiveAsPostgres(s, "plan", "--backup", oldest, "--target-immediate");
        Assert.True(plan.ExitCode == 0, plan.ToString());
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(StoreDir(s), "backups", oldest, "data")));
        await using var restored = await RestoreAndStartAsync(s, "restored", ["--backup", oldest]);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }

    [Fact]
    public async Task ExpireRemovesWhatKilledWritesLeftBehindAndNothingInProgress()
    {
        var store = LocalStore.Create("expire-abandoned", out var work);
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1));
        string Plant(string relative, DateTime written)
        {
            var path = Path.Combine(store.Dir, relative);
            TestEnv.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, "debris");
            File.SetLastWriteTimeUtc(path, written);
            return path;
        }
        var oldTemp = Plant("wal/00000001/.tmp.000000010000000000000002.zst.0123456789abcdef", DateTime.UtcNow.AddDays(-2));
        var freshTemp = Plant("wal/00000001/.tmp.000000010000000000000003.zst.fedcba9876543210", DateTime.UtcNow);
        var killedBackup = Plant("backups/20200101T000000Z-a1b2c3/data/00000.tar.zst", DateTime.UtcNow.AddDays(-2));
        var runningBackup = Plant($"backups/{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}-d4e5f6/data/00000.tar.zst", DateTime.UtcNow);

        // No policy at all is a usage error; the retention settings are the policy a scheduled expire runs with, no flags needed.
        Assert.Contains("needs --retain-full", Expect.OneLineError(await store.Cli.RunAsync("expire", "--dry-run"), 2));
        var dry = await store.Cli.RunAsync(["expire", "--dry-run"], new Dictionary<string, string?> { ["CLOUDARCHIVE_RETAIN_FULL"] = "1" }, null);
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Contains("would remove abandoned wal/00000001/.tmp.000000010000000000000002", dry.Stdout);
        Assert.True(File.Exists(oldTemp));

        var r = await store.Cli.OkAsync("expire", "--retain-full", "1");

        Assert.Contains("removed abandoned wal/00000001/.tmp.000000010000000000000002", r.Stdout);
        Assert.Contains("removed abandoned backups/20200101T000000Z-a1b2c3/data/00000.tar.zst", r.Stdout);
        Assert.False(File.Exists(oldTemp));
        Assert.False(File.Exists(killedBackup));
        Assert.True(File.Exists(freshTemp), "a temp file of a write that may be running was removed");
        Assert.True(File.Exists(runningBackup), "a backup in progress lost its bundle");
        Assert.True(File.Exists(store.ObjectPath("000000010000000000000001")));
    }

    [Fact]
    public async Task ExpireKeepsWhatARestoreInProgressNeeds()
    {
        var s = await StartSourceAsync("expire-leased");
        await using var _ = s.Cluster;
        var oldest = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 1, 100);
        await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 101, 100);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        // A restore of the oldest backup is under way: restored, its server not yet started.
        var dir = TestEnv.SharedDir(s.Work, "restoring");
        var restore = await CloudArchiveAsPostgres(s, "restore", "--backup", oldest, "--to", Path.Combine(dir, "data"), "--target-action", "promote");
        Assert.True(restore.ExitCode == 0, restore.ToString());

        var r = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "1");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"kept for a restore in progress: backup {oldest}", r.Stdout);
        Assert.DoesNotContain($"removed manifest/backups/{oldest}.json", r.Stdout);
        // The restore goes on and finds everything it needs.
        await using (var restored = await PgCluster.AdoptAsync(dir, "archive_mode = off"))
        {
            await restored.StartAsync();
            await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
            Assert.Equal(expected, await restored.SqlAsync(TableHash));
        }
        // Once its lease has ended (no renewal within the hour: here, its renewals removed), the policy applies again.
        Directory.Delete(Path.Combine(StoreDir(s), "leases"), recursive: true);
        var after = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "1");
        Assert.Contains($"removed manifest/backups/{oldest}.json", after.Stdout);
    }

    [Fact]
    public async Task ExpireReportsWhatTheStoreRefusesToDeleteAndCarriesOn()
    {
        var s = await StartSourceAsync("expire-locked");
        await using var _ = s.Cluster;
        var oldest = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 1, 100);
        var kept = await BackupAsync(s);
        await SwitchAndWriteAsync(s.Cluster, 101, 100);
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        // Like an object lock: the oldest backup's bundles cannot be deleted by the user running expire.
        var locked = Path.Combine(StoreDir(s), "backups", oldest, "data");
        await Proc.CheckAsync(Proc.RunAsync("chown", "root:root", locked));
        await Proc.CheckAsync(Proc.RunAsync("chmod", "0755", locked));

        var r = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "1");

        Assert.Equal(4, r.ExitCode);
        Assert.Contains($"REFUSED backups/{oldest}/data/", r.Stdout);
        Assert.Contains($"removed manifest/backups/{oldest}.json", r.Stdout);
        Assert.Contains("removed wal/00000001/", r.Stdout);
        var list = (await CloudArchiveAsPostgres(s, "backup-list")).Stdout;
        Assert.DoesNotContain(oldest, list);
        await using var restored = await RestoreAndStartAsync(s, "restored", ["--backup", kept]);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
    }
}
