using CloudArchive.Core.Backup;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// Incrementals that read only what PostgreSQL 17+'s WAL summaries say changed. The proof: after a mixed workload, a
/// chain of two summary-read incrementals restores, block for block in every relation file, what a content-compared
/// differential of the same moment restores, and the restored server has the source's rows. And where the summaries
/// cannot prove anything (summarize_wal off, a gap in them), every file is read, as the log says.
/// </summary>
public sealed class WalSummaryTests
{
    private const string Accounts = "select count(*) || ':' || md5(string_agg(aid || '=' || abalance, ',' order by aid)) from pgbench_accounts";
    private const string Shrunk = "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' order by id)) from shrinks";
    private const string Grown = "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' order by id)) from grown";
    private const string Cut = "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' order by id)) from cut";
    private const string Made = "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' order by id)) from m";

    private static async Task<(string Id, string Log)> BackupAsync(Source s, string type, params string[] extra)
    {
        var r = await CloudArchiveAsPostgres(s, ["backup-push", "--type", type, "--log-level", "info", .. extra]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($": {type}", r.Stdout);
        return (r.Stdout.Split(' ', ':')[1], r.Stderr);
    }

    /// <summary>The counts of the backup's "N relation files read by WAL summary (B blocks), M files read whole" line.</summary>
    private static (int BySummary, int Whole) Counts(string log)
    {
        var m = System.Text.RegularExpressions.Regex.Match(log, @"(\d+) relation files read by WAL summary(?: \(\d+ blocks\))?, (\d+) files read whole");
        Assert.True(m.Success, log);
        return (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value));
    }

    /// <summary>Sets every hint bit (VACUUM FREEZE everywhere) and flushes, so that reading the cluster later changes no page.</summary>
    private static async Task SettleAsync(PgCluster c, params string[] databases)
    {
        foreach (var db in databases) await c.SqlAsync("vacuum freeze", db);
        await c.SqlAsync("checkpoint");
    }

    /// <summary>Every relation file under <paramref name="data"/>, by path.</summary>
    private static Dictionary<string, string> RelationFiles(string data) =>
        Directory.EnumerateFiles(data, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(f => Path.GetRelativePath(data, f).Replace('\\', '/'))
            .Where(BlockMap.IsRelationFile)
            .ToDictionary(p => p, p => Path.Combine(data, p), StringComparer.Ordinal);

    private static void AssertSameBlocks(string expectedDir, string actualDir)
    {
        var expected = RelationFiles(expectedDir);
        var actual = RelationFiles(actualDir);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        Assert.True(expected.Count > 500, $"only {expected.Count} relation files");
        foreach (var (path, file) in expected)
        {
            var a = File.ReadAllBytes(file);
            var b = File.ReadAllBytes(actual[path]);
            Assert.True(a.Length == b.Length, $"{path}: {a.Length} bytes restored from the content-compared backup, {b.Length} from the summary-read chain");
            for (var block = 0; block * 8192 < a.Length; block++)
                Assert.True(a.AsSpan(block * 8192, Math.Min(8192, a.Length - block * 8192)).SequenceEqual(b.AsSpan(block * 8192, Math.Min(8192, b.Length - block * 8192))),
                    $"{path}: block {block} differs between the two restores");
        }
    }

    [Theory]
    [InlineData(17)]
    [InlineData(18)]
    public async Task AChainReadByWalSummaryRestoresBlockForBlockWhatAContentComparedBackupRestores(int major)
    {
        // wal_log_hints: a page whose hint bits alone change is in the summaries too, so both ways store the same bytes.
        var s = await StartSourceWithAsync(PgVersions.BinDir(major), [], $"summaries-{major}", "local",
            "summarize_wal = on", "wal_log_hints = on", "autovacuum = off");
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "2", "postgres"));
        await s.Cluster.SqlAsync("""
            create table shrinks (id int, v text); insert into shrinks select g, md5(g::text) from generate_series(1, 20000) g;
            create table grown (id int primary key, v text); insert into grown select g, md5(g::text) from generate_series(1, 1000) g;
            create table emptied (id int); insert into emptied select generate_series(1, 5000);
            create table dropped (id int); insert into dropped select generate_series(1, 5000);
            create table cut (id int, v text); insert into cut select g, md5(g::text) from generate_series(1, 20000) g;
            create unlogged table scratch (id int); insert into scratch select generate_series(1, 5000)
            """);
        await s.Cluster.SqlAsync("create database gone");
        await s.Cluster.SqlAsync("create table g (id int); insert into g select generate_series(1, 1000)", "gone");
        await SettleAsync(s.Cluster, "postgres", "gone", "template1");
        var (full, _) = await BackupAsync(s, "full");

        // Updates and inserts, a new table, a dropped one, TRUNCATE, a VACUUM that cuts a table short, a database made
        // (its files copied by FILE_COPY: no WAL names them) and one dropped; rows into an unlogged table.
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "300", "-c", "2", "postgres"));
        await s.Cluster.SqlAsync("create table added (id int); insert into added select generate_series(1, 3000); drop table dropped; truncate emptied; " +
            "delete from shrinks where id > 5000; insert into scratch select generate_series(1, 5000)");
        await s.Cluster.SqlAsync("vacuum shrinks");
        await s.Cluster.SqlAsync("create database made strategy file_copy");
        await s.Cluster.SqlAsync("create table m (id int, v text); insert into m select g, md5(g::text) from generate_series(1, 2000) g", "made");
        await s.Cluster.SqlAsync("drop database gone");
        await SettleAsync(s.Cluster, "postgres", "made", "template1");
        var (incr1, incr1Log) = await BackupAsync(s, "incr");
        Assert.True(Counts(incr1Log).BySummary > 300, incr1Log);
        Assert.Contains($"tell which blocks changed since {full}", incr1Log);

        // More: the cut table grows again past its old end, rows change in the new database, a table is rewritten.
        await s.Cluster.SqlAsync("insert into shrinks select g, 'again ' || g from generate_series(5001, 30000) g");
        await s.Cluster.SqlAsync("update grown set v = 'changed' where id % 97 = 0");
        await s.Cluster.SqlAsync("insert into grown select g, md5(g::text) from generate_series(1001, 1500) g");
        await s.Cluster.SqlAsync("update m set v = 'changed' where id < 10", "made");
        await s.Cluster.SqlAsync("vacuum full pgbench_branches");
        // Cut short and grown again between the same two backups (a limit block, then new pages after it).
        await s.Cluster.SqlAsync("delete from cut where id > 4000");
        await s.Cluster.SqlAsync("vacuum cut");
        await s.Cluster.SqlAsync("insert into cut select g, 'regrown ' || g from generate_series(4001, 12000) g");
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "1", "postgres"));
        await SettleAsync(s.Cluster, "postgres", "made", "template1");
        var (incr2, incr2Log) = await BackupAsync(s, "incr");
        Assert.Contains($"tell which blocks changed since {incr1}", incr2Log);
        Assert.True(Counts(incr2Log).BySummary > 300, incr2Log);

        // The same moment, read and compared file by file against the full backup.
        var (diff, diffLog) = await BackupAsync(s, "diff", "--no-wal-summaries");
        Assert.Contains($"WAL summaries not used (--no-wal-summaries): every file is read and compared with {full}", diffLog);
        Assert.Equal(0, Counts(diffLog).BySummary);

        // Both backups waited for their WAL: a restore to the end of the archive has every row of now.
        var expected = (await s.Cluster.SqlAsync(Accounts), await s.Cluster.SqlAsync(Shrunk), await s.Cluster.SqlAsync(Grown), await s.Cluster.SqlAsync(Made, "made"),
            await s.Cluster.SqlAsync(Cut));

        var bySummaryDir = TestEnv.SharedDir(s.Work, "by-summary");
        var byContentDir = TestEnv.SharedDir(s.Work, "by-content");
        foreach (var (dir, id) in new[] { (bySummaryDir, incr2), (byContentDir, diff) })
        {
            var r = await CloudArchiveAsPostgres(s, "restore", "--to", Path.Combine(dir, "data"), "--backup", id, "--target-action", "promote");
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("every checksum verified", r.Stdout);
        }
        AssertSameBlocks(Path.Combine(byContentDir, "data"), Path.Combine(bySummaryDir, "data"));
        Directory.Delete(Path.Combine(byContentDir, "data"), recursive: true);

        await using var restored = await PgCluster.AdoptWithAsync(s.Cluster.BinDir, bySummaryDir, "archive_mode = off");
        await restored.StartAsync();
        await PointInTimeRecoveryTests.WaitUntilPromotedAsync(restored);
        Assert.Equal(expected, (await restored.SqlAsync(Accounts), await restored.SqlAsync(Shrunk), await restored.SqlAsync(Grown),
            await restored.SqlAsync(Made, "made"), await restored.SqlAsync(Cut)));
        Assert.Equal("0|0|3000", await restored.SqlAsync("select (select count(*) from pg_database where datname = 'gone') || '|' || " +
            "(select count(*) from emptied) || '|' || (select count(*) from added)"));
        Assert.Equal("0", await restored.SqlAsync("select count(*) from scratch"));
        // The indexes agree with their tables: one lookup through each of pgbench_accounts' and grown's.
        await restored.SqlAsync("set enable_seqscan = off; select abalance from pgbench_accounts where aid = 77; select v from grown where id = 1400");
    }

    [Fact]
    public async Task WithoutSummariesOrWithAGapInThemEveryFileIsReadAndTheLogSaysWhy()
    {
        var s = await StartSourceWithAsync(PgVersions.BinDir(17), [], "summaries-off", "local", "summarize_wal = off");
        await using var _ = s.Cluster;
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-i", "-q", "-s", "1", "postgres"));
        var (full, _) = await BackupAsync(s, "full");

        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "1", "postgres"));
        var (incr1, offLog) = await BackupAsync(s, "incr");
        Assert.True(offLog.Contains($"WAL summaries not used (summarize_wal is off): every file is read and compared with {full}"), offLog);
        var (bySummary, whole) = Counts(offLog);
        Assert.Equal(0, bySummary);
        Assert.True(whole > 500, offLog);

        // Turned on: the summarizer begins at the last checkpoint's redo, that backup's start, so from it on they cover.
        await s.Cluster.SqlAsync("alter system set summarize_wal = on");
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "1", "postgres"));
        var (incr2, onLog) = await BackupAsync(s, "incr");
        Assert.True(onLog.Contains($"tell which blocks changed since {incr1}"), onLog);
        Assert.True(Counts(onLog).BySummary > 300, onLog);

        // The summaries since that backup removed (as wal_summary_keep_time does): a gap, every file read.
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "1", "postgres"));
        // A checkpoint ends a summary (from that backup's start to its redo); once written, it is removed.
        await s.Cluster.SqlAsync("checkpoint");
        for (var i = 0; i < 100 && await s.Cluster.SqlAsync("select (select summarized_lsn from pg_get_wal_summarizer_state()) >= " +
            "(select redo_lsn from pg_control_checkpoint())") != "t"; i++)
            await Task.Delay(100);
        var summaries = Path.Combine(s.Cluster.DataDir, "pg_wal", "summaries");
        Assert.NotEmpty(Directory.GetFiles(summaries, "*.summary"));
        foreach (var f in Directory.GetFiles(summaries, "*.summary")) File.Delete(f);
        await Proc.CheckAsync(s.Cluster.RunToolAsync("pgbench", "-n", "-t", "100", "-c", "1", "postgres"));
        var (incr3, gapLog) = await BackupAsync(s, "incr");
        Assert.True(gapLog.Contains("WAL summaries not used (no WAL summary on timeline 1 covers"), gapLog);
        Assert.Equal(0, Counts(gapLog).BySummary);

        // The summarizer went on: the next incremental is covered again.
        await s.Cluster.SqlAsync("insert into t select g, 'after ' || g from generate_series(1, 500) g");
        var (_, againLog) = await BackupAsync(s, "incr");
        Assert.True(againLog.Contains($"tell which blocks changed since {incr3}"), againLog);

        await s.Cluster.SqlAsync("insert into t values (100000, 'last')");
        var expected = (await s.Cluster.SqlAsync(TableHash), await s.Cluster.SqlAsync(Accounts));
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, (await restored.SqlAsync(TableHash), await restored.SqlAsync(Accounts)));
    }
}
