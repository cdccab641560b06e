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
}
