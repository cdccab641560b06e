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
        Directory.CreateDirectory(empty);
        Assert.Equal(6, (await CloudArchiveAsPostgres(s, "restore", "--delta", "--to", empty)).ExitCode);

        var r = await DeltaAsync(s, copy);
        Assert.False(File.Exists(stray), "a file the backup does not have is removed");
        Assert.Empty(Directory.GetFiles(Path.Combine(copy.DataDir, "pg_wal")));
        Assert.True(DeltaFigures(r).Blocks > 0, r.Stdout);
        await copy.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(copy);
        Assert.Equal(expected, await copy.SqlAsync(TableHash));
        Assert.Equal(accounts, await copy.SqlAsync(AccountsHash));
        Assert.Equal("0", await copy.SqlAsync("select count(*) from pg_database where datname = 'stray'"));
        Assert.Equal("0", await copy.SqlAsync("select count(*) from pg_class where relname = 'diverged'"));
        await copy.StopAsync();

        // A copy that did not diverge (restored and stopped as soon as it was consistent): almost nothing to rewrite.
        var dir = Path.Combine(s.Work, "same");
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
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
}
