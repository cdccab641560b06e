using System.Text;
using System.Text.Json.Nodes;
using CloudArchive.Core.Manifest;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// restore --db-include: one database of two restored (with the shared catalog and postgres), its rows compared on the
/// started server, the other written as zeros and dropped without error; and each refusal with one line before anything
/// is written.
/// </summary>
public sealed class DatabaseIncludeTests
{
    private const string Rows = "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' order by id)) from r";

    [Fact]
    public async Task OneDatabaseOfTwoIsRestoredAndTheOtherDropsWithoutError()
    {
        var s = await StartSourceAsync("db-include", "local");
        await using var _ = s.Cluster;
        // Each database has a table in a tablespace too: its files there are its own as well.
        var place = Path.Combine(s.Work, "ts");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["mkdir", place]));
        await s.Cluster.SqlAsync($"create tablespace far location '{place}'");
        foreach (var db in new[] { "keep", "other" })
        {
            await s.Cluster.SqlAsync($"create database {db}");
            await s.Cluster.SqlAsync($"create table r (id int primary key, v text); insert into r select g, '{db} ' || md5(g::text) from generate_series(1, 5000) g; " +
                $"create table f (id int) tablespace far; insert into f select generate_series(1, 1000)", db);
        }
        await s.Cluster.SqlAsync("insert into t select g, 'before' from generate_series(1, 100) g");
        var backup = await BackupAsync(s);

        // WAL the restore replays into both databases: updates, a VACUUM (all-visible pages), rows in the tablespace.
        foreach (var db in new[] { "keep", "other" })
        {
            await s.Cluster.SqlAsync("update r set v = v || ' changed' where id % 10 = 0; insert into f select generate_series(1001, 2000)", db);
            await s.Cluster.SqlAsync("vacuum r", db);
        }
        await s.Cluster.SqlAsync("insert into t select g, 'after' from generate_series(101, 200) g");
        var expected = (await s.Cluster.SqlAsync(Rows, "keep"), await s.Cluster.SqlAsync("select count(*) from f", "keep"), await s.Cluster.SqlAsync(TableHash));
        var otherOid = await s.Cluster.SqlAsync("select oid from pg_database where datname = 'other'");
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        var dir = TestEnv.SharedDir(s.Work, "restored");
        var newPlace = Path.Combine(s.Work, "ts-restored");
        var r = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"), "--db-include", "keep", "--target-action", "promote",
            "--tablespace-map", $"{place}={newPlace}");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("databases    keep whole, with the shared catalog, template0, template1 and postgres; as zeros, to be dropped: other", r.Stdout);
        Assert.Contains("files of the databases not included written as zeros", r.Stdout);
        Assert.Contains("DROP DATABASE \"other\"", r.Stdout);
        // Nothing of other was written: its files are there at their sizes, and hold only zeros.
        var otherFiles = Directory.GetFiles(Path.Combine(dir, "data", "base", otherOid))
            .Concat(Directory.GetDirectories(newPlace).SelectMany(v => Directory.GetFiles(Path.Combine(v, otherOid)))).ToList();
        Assert.Contains(otherFiles, f => new FileInfo(f).Length > 0);
        Assert.All(otherFiles, f => Assert.True(File.ReadAllBytes(f).All(b => b == 0), $"{f} is not zeros"));

        await using var restored = await PgCluster.AdoptWithAsync(s.Cluster.BinDir, dir, "archive_mode = off");
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        Assert.Equal(expected, (await restored.SqlAsync(Rows, "keep"), await restored.SqlAsync("select count(*) from f", "keep"), await restored.SqlAsync(TableHash)));
        await restored.SqlAsync("drop database other");
        Assert.Equal("keep,postgres,template0,template1", await restored.SqlAsync("select string_agg(datname, ',' order by datname) from pg_database"));
        Assert.False(Directory.Exists(Path.Combine(dir, "data", "base", otherOid)));
        // The server is whole: a new database from template1, and a checkpoint that writes every buffer.
        await restored.SqlAsync("create database fresh");
        await restored.SqlAsync("checkpoint");
        Assert.Equal("1000", await restored.SqlAsync("select count(*) from generate_series(1, 1000)", "fresh"));

        // Refused, one line, nothing written: a name the backup does not have; with --delta; with --standby.
        async Task RefusedAsync(string why, int code, params string[] args)
        {
            var to = Path.Combine(s.Work, "refused");
            var refused = await CloudArchiveAsPostgres(s, ["restore", "--to", to, "--tablespace-map", $"{place}={Path.Combine(s.Work, "ts-refused")}", .. args]);
            Assert.Contains(why, Expect.OneLineError(refused, code));
            Assert.False(Directory.Exists(to) || Directory.Exists(Path.Combine(s.Work, "ts-refused")), refused.ToString());
        }
        await RefusedAsync("has no database 'missing' (it has keep, other, postgres, template0, template1)", 2, "--db-include", "keep", "--db-include", "missing");
        await RefusedAsync("--db-include cannot go with --standby", 2, "--db-include", "keep", "--standby");
        await restored.StopAsync();
        var delta = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"), "--delta", "--db-include", "keep",
            "--tablespace-map", $"{place}={newPlace}");
        Assert.Contains("--db-include cannot go with --delta", Expect.OneLineError(delta, 2));

        // The record planted: without its database list (a backup from before it was recorded), a database with no
        // directory in the backup, and a list naming one database twice.
        var store = new LocalStore(s.Store.Url["file://".Length..], create: false);
        var recordPath = Path.Combine(store.Dir, StoreLayout.BackupRecordKey(backup));
        var original = LocalStore.Read(recordPath).ContentText;
        void Plant(Action<JsonNode> change)
        {
            var record = JsonNode.Parse(original)!;
            change(record);
            File.Delete(recordPath);
            store.Plant(StoreLayout.BackupRecordKey(backup), Encoding.UTF8.GetBytes(record.ToJsonString()), []);
        }
        Plant(record => record.AsObject().Remove("databases"));
        await RefusedAsync("does not record which database is which directory", 2, "--db-include", "keep");
        Plant(record => record["databases"]!.AsArray().Add(new JsonObject { ["oid"] = 99999, ["name"] = "ghost" }));
        await RefusedAsync("'ghost' (OID 99999) has no directory in backup", 2, "--db-include", "ghost");
        Plant(record => record["databases"]!.AsArray().Add(new JsonObject { ["oid"] = 99999, ["name"] = "keep" }));
        await RefusedAsync("its database list names 'keep' (OID 99999) twice", 5, "--db-include", "keep");
        Directory.Delete(newPlace, recursive: true);
    }
}
