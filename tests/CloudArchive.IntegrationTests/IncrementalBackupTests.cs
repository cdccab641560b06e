using System.Text.Json;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// backup-push --type diff|incr: block-level incremental backups, restored as a chain. Each scenario changes the cluster
/// between backups in the ways that move pages without the page LSN telling the whole story, and ends with the chain
/// restored, the server started and the rows compared.
/// </summary>
public sealed class IncrementalBackupTests
{
    internal const string TellersHash = "select count(*) || ':' || md5(string_agg(tid || '=' || tbalance, ',' order by tid)) from pgbench_tellers";
    internal const string HistoryHash = "select count(*) || ':' || md5(coalesce(string_agg(aid || '=' || delta, ',' order by aid, delta, mtime), '')) from pgbench_history";

    internal static async Task<(string Id, JsonElement Record)> BackupOfTypeAsync(Source s, string type)
    {
        var r = await CloudArchiveAsPostgres(s, "backup-push", "--type", type);
        Assert.True(r.ExitCode == 0, r.ToString());
        var id = r.Stdout.Split(' ', ':')[1];
        Assert.Contains($": {type}", r.Stdout);
        return (id, Record(s, id));
    }

    internal static JsonElement Record(Source s, string id)
    {
        var list = CloudArchiveAsPostgres(s, "backup-list", "--json").GetAwaiter().GetResult();
        Assert.True(list.ExitCode == 0, list.ToString());
        return JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray().Single(b => b.GetProperty("id").GetString() == id);
    }

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task AFullDiffIncrIncrChainRestoresToAPointInTimeUnderLoad(string storeKind)
    {
        var s = await StartSourceAsync("incr-chain-" + storeKind, storeKind);
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "4", "postgres"));
        await s.Cluster.SqlAsync("insert into t select g, 'full ' || g from generate_series(1, 300) g");
        var (full, fullRecord) = await BackupOfTypeAsync(s, "full");

        // Scattered updates, a table rewritten to a new relfilenode (VACUUM FULL).
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "300", "-c", "2", "postgres"));
        await s.Cluster.SqlAsync("vacuum full pgbench_branches");
        await s.Cluster.SqlAsync("insert into t select g, 'diff ' || g from generate_series(301, 400) g");
        var (diff, diffRecord) = await BackupOfTypeAsync(s, "diff");
        Assert.Equal(full, diffRecord.GetProperty("reference").GetString());
        // Only what changed: a fraction of the full backup.
        Assert.True(diffRecord.GetProperty("storedSize").GetInt64() < fullRecord.GetProperty("storedSize").GetInt64() / 2,
            $"diff stored {diffRecord.GetProperty("storedSize")} bytes, the full backup {fullRecord.GetProperty("storedSize")}");

        // A table truncated and refilled, a database copied file by file, a tablespace added and a table moved into it.
        var place = Path.Combine(s.Work, "ts-old");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", place]));
        await s.Cluster.SqlAsync("create table keep as select * from pgbench_history");
        await s.Cluster.SqlAsync("truncate pgbench_history");
        await s.Cluster.SqlAsync("insert into pgbench_history select * from keep where aid % 2 = 0");
        await s.Cluster.SqlAsync("create database copied strategy file_copy");
        await s.Cluster.SqlAsync($"create tablespace moved location '{place}'");
        await s.Cluster.SqlAsync("alter table pgbench_tellers set tablespace moved");
        var (incr1, incr1Record) = await BackupOfTypeAsync(s, "incr");
        Assert.Equal(diff, incr1Record.GetProperty("reference").GetString());

        // A database dropped and another created; the last incremental taken while pgbench writes.
        await s.Cluster.SqlAsync("drop database copied");
        await s.Cluster.SqlAsync("create database created");
        await s.Cluster.SqlAsync("create table c (id int primary key, v text); insert into c select g, md5(g::text) from generate_series(1, 2000) g", "created");
        var load = s.Cluster.RunToolAsync("pgbench", "-n", "-T", "6", "-c", "2", "postgres");
        await Task.Delay(500);
        var (incr2, _) = await BackupOfTypeAsync(s, "incr");
        await Proc.CheckAsync(load);
        await s.Cluster.SqlAsync("insert into t select g, 'wanted ' || g from generate_series(401, 500) g");
        var tellers = await s.Cluster.SqlAsync(TellersHash);
        var history = await s.Cluster.SqlAsync(HistoryHash);
        var created = await s.Cluster.SqlAsync("select count(*) || md5(string_agg(v, ',' order by id)) from c", "created");
        var (target, table, accounts) = await MarkTargetTimeAndMoveOnAsync(s);

        var plan = await CloudArchiveAsPostgres(s, "plan", "--target-time", target, "--json");
        Assert.True(plan.ExitCode == 0, plan.ToString());
        var chain = JsonDocument.Parse(plan.Stdout).RootElement.GetProperty("chain").EnumerateArray()
            .Select(m => m.GetProperty("type").GetString() + " " + m.GetProperty("id").GetString()).ToList();
        Assert.Equal([$"incr {incr2}", $"incr {incr1}", $"diff {diff}", $"full {full}"], chain);

        await using var restored = await RestoreAndStartAsync(s, "restored", ["--target-time", target, "--tablespace-map", $"{place}={Path.Combine(s.Work, "ts-new")}"]);
        Assert.Equal(table, await restored.SqlAsync(TableHash));
        Assert.Equal(accounts, await restored.SqlAsync(AccountsHash));
        Assert.Equal(tellers, await restored.SqlAsync(TellersHash));
        Assert.Equal(history, await restored.SqlAsync(HistoryHash));
        Assert.Equal(created, await restored.SqlAsync("select count(*) || md5(string_agg(v, ',' order by id)) from c", "created"));
        Assert.Equal("0", await restored.SqlAsync("select count(*) from pg_database where datname = 'copied'"));
        Assert.Equal("moved", await restored.SqlAsync("select spcname from pg_tablespace t join pg_class c on c.reltablespace = t.oid where relname = 'pgbench_tellers'"));
        Secrets.AssertNoneIn(s.Cluster.ServerLog + restored.ServerLog);
    }

    /// <summary>restore --delta into the directory of <paramref name="copy"/> (stopped), then starts it on its own port with archiving off.</summary>
    private static async Task<ProcResult> DeltaAsync(Source s, PgCluster copy, params string[] args)
    {
        var r = await CloudArchiveAsPostgres(s, ["restore", "--delta", "--to", copy.DataDir, "--target-action", "promote", .. args]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("every checksum verified", r.Stdout);
        // The backup's postgresql.conf came back with the source's port: this copy runs beside it on its own.
        await copy.AppendConfAsync([$"port = {copy.Port}", $"unix_socket_directories = '{copy.Dir}'", "archive_mode = off"]);
        return r;
    }

    private static (long Blocks, double Mib, int Kept, int Files) DeltaFigures(ProcResult r)
    {
        var m = System.Text.RegularExpressions.Regex.Match(r.Stdout, @"delta: (\d+) of (\d+) files already matched the backup; rewrote (\d+) blocks and whole files in \d+ files \(([0-9.]+) MiB\)");
        Assert.True(m.Success, r.Stdout);
        return (long.Parse(m.Groups[3].Value), double.Parse(m.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value));
    }

    [Theory]
    [InlineData("local")]
    [InlineData("s3")]
    public async Task DeltaBringsADivergedCopyBackAndRewritesAlmostNothingOfOneThatDidNot(string storeKind)
    {
        var s = await StartSourceAsync("incr-delta-" + storeKind, storeKind);
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "4", "postgres"));
        await s.Cluster.SqlAsync("insert into t select g, 'full ' || g from generate_series(1, 300) g");
        await BackupOfTypeAsync(s, "full");
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "200", "-c", "2", "postgres"));
        var (incr, _) = await BackupOfTypeAsync(s, "incr");
        await s.Cluster.SqlAsync("insert into t select g, 'after ' || g from generate_series(301, 400) g");

        // A copy of the cluster (from the chain) that was promoted and written to: rows changed, a table and a database added.
        await using var copy = await RestoreAndStartAsync(s, "copy", ["--backup", incr]);
        await copy.SqlAsync("update pgbench_accounts set abalance = abalance + 1 where aid % 7 = 0");
        await copy.SqlAsync("create table diverged as select g from generate_series(1, 100000) g");
        await copy.SqlAsync("create database stray");
        await copy.SqlAsync("delete from t where id < 100");
        await copy.StopAsync();
        var stray = Path.Combine(copy.DataDir, "base", "stray-file");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", stray]));
        // Its pg_wal on another disk (initdb --waldir): the link stays, the diverged timeline's WAL in it goes, nothing else there.
        var walDir = Path.Combine(s.Work, "copy-wal");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["sh", "-c", $"mv '{copy.DataDir}/pg_wal' '{walDir}' && ln -s '{walDir}' '{copy.DataDir}/pg_wal' && touch '{walDir}/not-wal'"]));
        Assert.NotEmpty(Directory.GetFiles(walDir, "0000000*"));

        var expected = await s.Cluster.SqlAsync(TableHash);
        var accounts = await s.Cluster.SqlAsync(AccountsHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        // Refused, and nothing changed: a running server, a directory of another cluster, one that is not a data directory.
        await copy.StartAsync();
        var running = await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", copy.DataDir);
        Assert.True(running.ExitCode == 6, running.ToString());
        Assert.Contains("is running on", running.Stderr);
        Assert.Equal("1", await copy.SqlAsync("select count(*) from pg_database where datname = 'stray'"));
        await copy.StopAsync();
        await using (var other = await PgCluster.InitAsync(Path.Combine(s.Work, "other")))
        {
            var foreign = await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", other.DataDir);
            Assert.True(foreign.ExitCode == 6, foreign.ToString());
            Assert.Contains("another cluster", foreign.Stderr);
        }
        var empty = Path.Combine(s.Work, "empty");
        TestEnv.CreateDirectory(empty);
        Assert.Equal(6, (await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", empty)).ExitCode);

        if (storeKind == "local")
        {
            // A bundle of the chain gone from the store: refused before a local file is touched.
            var bundle = Directory.GetFiles(Path.Combine(new Uri(s.Store.Url).LocalPath, "backups"), "*.tar.zst", SearchOption.AllDirectories).Order().First();
            File.Move(bundle, bundle + ".away");
            var missing = await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", copy.DataDir);
            File.Move(bundle + ".away", bundle);
            Assert.True(missing.ExitCode == 5, missing.ToString());
            Assert.Contains("nothing was changed", missing.Stderr);
            Assert.True(File.Exists(stray), "nothing may change before every bundle is known to be there");
        }
        var r = await DeltaAsync(s, copy);
        Assert.False(File.Exists(stray), "a file the backup does not have is removed");
        Assert.Equal(walDir, new DirectoryInfo(Path.Combine(copy.DataDir, "pg_wal")).LinkTarget);
        Assert.Equal([Path.Combine(walDir, "not-wal")], Directory.GetFiles(walDir));
        Assert.True(DeltaFigures(r).Blocks > 0, r.Stdout);
        await copy.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(copy);
        Assert.Equal(expected, await copy.SqlAsync(TableHash));
        Assert.Equal(accounts, await copy.SqlAsync(AccountsHash));
        Assert.Equal("0", await copy.SqlAsync("select count(*) from pg_database where datname = 'stray'"));
        Assert.Equal("0", await copy.SqlAsync("select count(*) from pg_class where relname = 'diverged'"));
        await copy.StopAsync();

        // A copy that did not diverge (restored and stopped as soon as it was consistent): almost nothing to rewrite.
        var dir = TestEnv.SharedDir(s.Work, "same");
        var first = await CloudArchiveAsPostgres(s, "restore", "--backup", incr, "--target-immediate", "--target-action", "shutdown",
            "--to", Path.Combine(dir, "data"));
        Assert.True(first.ExitCode == 0, first.ToString());
        await using var same = await PgCluster.AdoptAsync(dir, "archive_mode = off");
        await same.TryStartAsync();
        for (var i = 0; i < 300 && File.Exists(Path.Combine(same.DataDir, "postmaster.pid")); i++) await Task.Delay(100);
        var again = await DeltaAsync(s, same, "--backup", incr);
        var figures = DeltaFigures(again);
        Assert.True(figures.Kept > figures.Files * 9 / 10, again.Stdout);
        Assert.True(figures.Mib < 2.0, again.Stdout);
        await same.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(same);
        Assert.Equal(expected, await same.SqlAsync(TableHash));
        Assert.Equal(accounts, await same.SqlAsync(AccountsHash));
    }

    /// <summary>
    /// restore --delta cleans a tablespace directory only where the operator pointed it: in place, the one the copy's own
    /// pg_tblspc link names, never a location that only the record (from the store) names; and in it only the backup's
    /// PG_MAJOR_CATVERSION directory: a directory that holds anything else is refused before anything changes.
    /// </summary>
    [Fact]
    public async Task DeltaCleansOnlyTheTablespaceDirectoryTheOperatorPointedAt()
    {
        var s = await StartSourceAsync("delta-ts", "local");
        await using var _ = s.Cluster;
        var place = Path.Combine(s.Work, "ts-source");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", place]));
        await s.Cluster.SqlAsync($"create tablespace ts location '{place}'");
        await s.Cluster.SqlAsync("create table moved tablespace ts as select g from generate_series(1, 1000) g");
        await s.Cluster.SqlAsync("insert into t select g, 'row ' || g from generate_series(1, 100) g");
        var (full, _) = await BackupOfTypeAsync(s, "full");
        var expected = await s.Cluster.SqlAsync(TableHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        // The copy's tablespace lives elsewhere; the source keeps running on the recorded location.
        var copyPlace = Path.Combine(s.Work, "ts-copy");
        await using var copy = await RestoreAndStartAsync(s, "copy", ["--backup", full, "--tablespace-map", $"{place}={copyPlace}"]);
        await copy.SqlAsync("insert into moved select g from generate_series(1001, 2000) g");
        await copy.StopAsync();
        var sourceFiles = Directory.GetFiles(place, "*", SearchOption.AllDirectories).Order().ToList();

        // In place: the record says the source's directory, the copy's link says its own. Refused; the source's untouched.
        var inPlace = await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", copy.DataDir, "--backup", full, "--tablespace-in-place");
        Assert.Contains($"links to {copyPlace}", Expect.OneLineError(inPlace, 2));
        Assert.Equal(sourceFiles, Directory.GetFiles(place, "*", SearchOption.AllDirectories).Order().ToList());

        // Named, but the directory holds something that is not the tablespace's: refused, and kept.
        var notes = Path.Combine(copyPlace, "notes.txt");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["touch", notes]));
        var foreign = await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", copy.DataDir, "--backup", full, "--tablespace-map", $"{place}={copyPlace}");
        Assert.Contains("holds notes.txt", Expect.OneLineError(foreign, 6));
        Assert.True(File.Exists(notes));

        File.Delete(notes);
        await DeltaAsync(s, copy, "--backup", full, "--tablespace-map", $"{place}={copyPlace}");
        await copy.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(copy);
        Assert.Equal(expected, await copy.SqlAsync(TableHash));
        Assert.Equal("1000", await copy.SqlAsync("select count(*) from moved"));
        Assert.Equal(sourceFiles, Directory.GetFiles(place, "*", SearchOption.AllDirectories).Order().ToList());
    }

    private static string StoreDir(Source s) => new Uri(s.Store.Url).LocalPath;

    /// <summary>Flips one byte of <paramref name="path"/> (as the store's other writers might), runs <paramref name="check"/>, then puts it back.</summary>
    private static async Task WithFlippedByteAsync(string path, long at, Func<Task> check)
    {
        var original = await File.ReadAllBytesAsync(path);
        var bytes = (byte[])original.Clone();
        bytes[at] ^= 0x5A;
        await File.WriteAllBytesAsync(path, bytes);
        try { await check(); }
        finally { await File.WriteAllBytesAsync(path, original); }
    }

    [Fact]
    public async Task ADamagedOrMissingLinkIsFoundByRestoreVerifyPlanAndStatusAndAKilledIncrementalLeavesNothing()
    {
        var s = await StartSourceAsync("incr-faults");
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "2", "postgres"));
        var (full, _) = await BackupOfTypeAsync(s, "full");
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "2", "postgres"));
        var (incr1, _) = await BackupOfTypeAsync(s, "incr");
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "2", "postgres"));
        var (incr2, _) = await BackupOfTypeAsync(s, "incr");
        await s.Cluster.SqlAsync("insert into t select g, 'x' from generate_series(1, 100) g");
        var expected = await s.Cluster.SqlAsync(TableHash);
        var accounts = await s.Cluster.SqlAsync(AccountsHash);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);

        // Killed while it streams: no record, so backup-list, plan and restore never see it.
        var psi = Proc.Info(TestEnv.Infra("pg-cluster.sh"), ["as-postgres", TestEnv.Binary, "backup-push", "--type", "incr", "--config", s.Store.ConfigFile, "--jobs", "1"],
            new Dictionary<string, string?> { ["PGHOST"] = s.Cluster.Dir, ["PGPORT"] = s.Cluster.Port.ToString() });
        var before = Directory.GetDirectories(Path.Combine(StoreDir(s), "backups")).Length;
        using (var p = System.Diagnostics.Process.Start(psi)!)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (Directory.GetDirectories(Path.Combine(StoreDir(s), "backups")).Length == before && DateTime.UtcNow < deadline) await Task.Delay(10);
            await Proc.CheckAsync(Proc.RunAsync("pkill", "-KILL", "-f", $"{TestEnv.Binary} backup-push --type incr --config {s.Store.ConfigFile}"));
            await p.WaitForExitAsync();
        }
        var listed = await CloudArchiveAsPostgres(s, "backup-list", "--json");
        Assert.Equal(3, System.Text.Json.JsonDocument.Parse(listed.Stdout).RootElement.GetArrayLength());

        // A flipped byte in a block map: verify names it, and no incremental builds on it (exit 5, nothing listed).
        var map = Directory.GetFiles(Path.Combine(StoreDir(s), "backups", incr2, "data"), "*.map").OrderByDescending(f => new FileInfo(f).Length).First();
        await WithFlippedByteAsync(map, new FileInfo(map).Length / 2, async () =>
        {
            var verify = await CloudArchiveAsPostgres(s, "verify");
            Assert.True(verify.ExitCode == 5, verify.ToString());
            Assert.Contains(Path.GetFileName(map), verify.Stdout);
            var onTop = await CloudArchiveAsPostgres(s, "backup-push", "--type", "incr");
            Assert.True(onTop.ExitCode == 5, onTop.ToString());
            Assert.Contains($"backup {incr2} is damaged", onTop.Stderr);
            Assert.Equal(3, System.Text.Json.JsonDocument.Parse((await CloudArchiveAsPostgres(s, "backup-list", "--json")).Stdout).RootElement.GetArrayLength());
        });
        await s.Cluster.StopAsync();

        // A flipped byte in a block the newest incremental stored: restore refuses (exit 5) and leaves no server ready to start.
        var bundle = Directory.GetFiles(Path.Combine(StoreDir(s), "backups", incr2, "data"), "*.tar.zst").OrderByDescending(f => new FileInfo(f).Length).First();
        await WithFlippedByteAsync(bundle, new FileInfo(bundle).Length / 2, async () =>
        {
            var dir = Path.Combine(s.Work, "damaged");
            var r = await CloudArchiveAsPostgres(s, "restore", "--to", dir);
            Assert.True(r.ExitCode == 5, r.ToString());
            Assert.Single(r.StderrLines);
            Assert.False(File.Exists(Path.Combine(dir, "recovery.signal")));
            var verify = await CloudArchiveAsPostgres(s, "verify");
            Assert.True(verify.ExitCode == 5, verify.ToString());
            Assert.Contains(Path.GetFileName(bundle), verify.Stdout);
        });

        // The middle link's record removed: the newest incremental cannot be restored, and everything says which link is missing.
        var record = Path.Combine(StoreDir(s), "manifest", "backups", incr1 + ".json");
        var saved = await File.ReadAllBytesAsync(record);
        File.Delete(record);
        var plan = await CloudArchiveAsPostgres(s, "plan", "--backup", incr2);
        Assert.True(plan.ExitCode == 8, plan.ToString());
        Assert.Contains($"{incr2} builds on {incr1}, which is not in the store", plan.Stderr);
        var verifyBroken = await CloudArchiveAsPostgres(s, "verify");
        Assert.Equal(5, verifyBroken.ExitCode);
        Assert.Contains($"{incr2} builds on {incr1}", verifyBroken.Stdout);
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Contains($"backup {incr2} cannot be restored", status.Stdout);
        // Without --backup, restore passes over the broken chain for the full backup, says so, and still reaches the end of the archive.
        var latest = await CloudArchiveAsPostgres(s, "plan");
        Assert.True(latest.ExitCode == 0, latest.ToString());
        Assert.Contains($"passed over backup {incr2}", latest.Stdout);
        Assert.Contains($"backup       {full}", latest.Stdout);
        await using (var fromFull = await RestoreAndStartAsync(s, "from-full", []))
        {
            Assert.Equal(expected, await fromFull.SqlAsync(TableHash));
            Assert.Equal(accounts, await fromFull.SqlAsync(AccountsHash));
        }

        // Put back, the chain restores again; expire --retain-full 1 keeps the whole chain the full backup heads.
        await File.WriteAllBytesAsync(record, saved);
        var expire = await CloudArchiveAsPostgres(s, "expire", "--retain-full", "1");
        Assert.True(expire.ExitCode == 0, expire.ToString());
        Assert.True(File.Exists(record) && Directory.Exists(Path.Combine(StoreDir(s), "backups", full)), expire.Stdout);
        await using var restored = await RestoreAndStartAsync(s, "restored", ["--backup", incr2]);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        Assert.Equal(accounts, await restored.SqlAsync(AccountsHash));
    }

    [Fact]
    public async Task ARelationExtendedPastOneGibibyteIntoANewSegmentFileRestoresFromTheChain()
    {
        var s = await StartSourceAsync("incr-1gib");
        await using var _ = s.Cluster;
        // Rows of 1,900 bytes stored as they are (no compression, no TOAST): four to a page.
        await s.Cluster.SqlAsync("create table big (id int, v text); alter table big alter column v set storage plain");
        await s.Cluster.SqlAsync("insert into big select g, repeat(chr(65 + g % 26), 1900) from generate_series(1, 520000) g");
        var file = await s.Cluster.SqlAsync("select pg_relation_filepath('big')");
        // Hint bits set now (the first scan after a bulk load rewrites every page: an incremental would rightly store them all).
        await s.Cluster.SqlAsync("vacuum (freeze) big");
        await s.Cluster.SqlAsync("checkpoint");
        Assert.False(File.Exists(Path.Combine(s.Cluster.DataDir, file + ".1")), "the table should still fit its first segment file");
        var (full, fullRecord) = await BackupOfTypeAsync(s, "full");

        // Past 1 GiB: the relation's second segment file appears; a few rows early in the first change too.
        await s.Cluster.SqlAsync("insert into big select g, repeat(chr(97 + g % 26), 1900) from generate_series(520001, 560000) g");
        await s.Cluster.SqlAsync("update big set v = repeat('z', 1900) where id between 1000 and 1100");
        await s.Cluster.SqlAsync("checkpoint");
        Assert.True(File.Exists(Path.Combine(s.Cluster.DataDir, file + ".1")), "the table should have grown into a second segment file");
        var (incr, incrRecord) = await BackupOfTypeAsync(s, "incr");
        Assert.Equal(full, incrRecord.GetProperty("reference").GetString());
        // What changed and what grew (about 80 MiB), not the gibibyte before it.
        Assert.True(incrRecord.GetProperty("size").GetInt64() < fullRecord.GetProperty("size").GetInt64() / 5,
            $"incr {incrRecord.GetProperty("size")} bytes, full {fullRecord.GetProperty("size")}");

        var expected = await s.Cluster.SqlAsync("select count(*) || ':' || sum(length(v)) || ':' || md5(string_agg(left(v, 1), '' order by id)) from big");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        await using var restored = await RestoreAndStartAsync(s, "restored", ["--backup", incr, "--target-immediate"]);
        Assert.Equal(expected, await restored.SqlAsync("select count(*) || ':' || sum(length(v)) || ':' || md5(string_agg(left(v, 1), '' order by id)) from big"));
        Assert.True(File.Exists(Path.Combine(restored.DataDir, file + ".1")));
    }
}
