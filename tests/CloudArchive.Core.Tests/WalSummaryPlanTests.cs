using System.Security.Cryptography;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>
/// Which blocks an incremental reads when PostgreSQL's WAL summaries say what changed (<see cref="WalSummaryPlan"/>):
/// summaries that must cover the reference's start to this backup's, and per file the listed blocks, a limit block's
/// tail, a grown file's tail, or the whole file where the rows prove nothing, from planted summary rows.
/// </summary>
public sealed class WalSummaryPlanTests
{
    private const int BlockSize = 8192;
    private const long SegmentBlocks = 131072;
    private const uint Db = 5, Spc = 1663;

    private static Lsn L(string text) => Lsn.Parse(text);

    private static BackupEntry Was(string path, long blocks) => new(path, 0, blocks * BlockSize, "sha", 0x180) { Blocks = true };

    private static WalSummaryRow Block(uint rel, long block, uint db = Db, uint spc = Spc, short fork = 0) => new(rel, spc, db, fork, block, false);

    private static WalSummaryRow Limit(uint rel, long block, uint db = Db, uint spc = Spc) => new(rel, spc, db, 0, block, true);

    private static WalSummaryPlan Plan(IEnumerable<WalSummaryRow> rows, params string[] paths)
    {
        var plan = new WalSummaryPlan(BlockSize, SegmentBlocks, paths);
        foreach (var r in rows) Assert.True(plan.Add(r));
        return plan.Seal();
    }

    private static string? Read(WalSummaryPlan plan, string path, long blocksNow, BackupEntry? was) =>
        plan.BlocksToRead(path, blocksNow * BlockSize, was)?.ToString();

    [Fact]
    public void SummariesMustCoverTheReferencesStartToThisBackupsOnItsTimelineWithoutAGap()
    {
        WalSummaryFile S(uint tli, string start, string end) => new(tli, L(start), L(end));
        var available = new[] { S(1, "0/1000000", "0/3000028"), S(1, "0/3000028", "0/5000028"), S(1, "0/5000028", "0/7000028"), S(2, "0/7000028", "0/9000000") };

        var needed = WalSummaryPlan.Covering(available, 1, L("0/3000028"), L("0/7000028"), out _);
        Assert.Equal([S(1, "0/3000028", "0/5000028"), S(1, "0/5000028", "0/7000028")], needed);
        // The first summary may begin before the reference's start: it lists more, never less.
        Assert.Equal(3, WalSummaryPlan.Covering(available, 1, L("0/2000000"), L("0/7000028"), out _)!.Count);
        // Nothing changed in between (a standby's backups from one restartpoint): covered by no summary at all.
        Assert.Empty(WalSummaryPlan.Covering(available, 1, L("0/7000028"), L("0/7000028"), out _)!);

        // A gap (summaries removed, or summarize_wal off for a while).
        Assert.Null(WalSummaryPlan.Covering([available[0], available[2]], 1, L("0/2000000"), L("0/7000028"), out var gap));
        Assert.Contains("covers 0/3000028", gap);
        // Not yet up to this backup's start.
        Assert.Null(WalSummaryPlan.Covering(available, 1, L("0/3000028"), L("0/8000000"), out var tail));
        Assert.Contains("covers 0/7000028", tail);
        // Another timeline's summaries are not this one's WAL.
        Assert.Null(WalSummaryPlan.Covering(available, 2, L("0/3000028"), L("0/8000000"), out _));
        Assert.Null(WalSummaryPlan.Covering(available, 1, L("0/7000028"), L("0/3000028"), out var backwards));
        Assert.Contains("after this backup's start", backwards);
    }

    [Fact]
    public void OnlyTheListedBlocksOfAFileOfTheSameSizeAreRead()
    {
        var plan = Plan([Block(16384, 7), Block(16384, 2), Block(16384, 2), Block(16385, 1), Block(16384, 3, db: 6)]);

        Assert.Equal("2,7", Read(plan, "base/5/16384", 10, Was("base/5/16384", 10)));
        // Untouched by the WAL: nothing is read, every block is the reference's.
        Assert.Equal("", Read(plan, "base/5/16386", 10, Was("base/5/16386", 10)));
        Assert.Equal("1", Read(plan, "base/5/16385", 4, Was("base/5/16385", 4)));
        Assert.Equal(3, plan.FilesBySummary);
        Assert.Equal(3, plan.BlocksRead);
        Assert.Equal(0, plan.FilesReadWhole);
    }

    [Fact]
    public void AFileThatGrewIsReadFromTheReferencesEndOn()
    {
        var plan = Plan([Block(16384, 1), Block(16384, 12)]);
        Assert.Equal("1,10-13", Read(plan, "base/5/16384", 14, Was("base/5/16384", 10)));
    }

    [Fact]
    public void ALimitBlockMakesEveryBlockFromItOnRead()
    {
        // Truncated to 4 blocks (VACUUM), then re-extended to 6: blocks 4 and 5 are not the reference's, listed or not.
        var plan = Plan([Block(16384, 1), Limit(16384, 4), Block(16384, 5)]);
        Assert.Equal("1,4-5", Read(plan, "base/5/16384", 6, Was("base/5/16384", 10)));
        // Truncated to 4 and not extended again: shorter, as the limit explains.
        Assert.Equal("1", Read(plan, "base/5/16384", 4, Was("base/5/16384", 10)));
        // Two summaries with a limit each: the lower one counts.
        var twice = Plan([Limit(16384, 8), Limit(16384, 3)]);
        Assert.Equal("3-9", Read(twice, "base/5/16384", 10, Was("base/5/16384", 10)));
    }

    [Fact]
    public void AFileShorterThanTheReferencesWithoutALimitThatExplainsItIsReadWhole()
    {
        var plan = Plan([Block(16384, 1), Limit(16385, 8)]);
        Assert.Null(Read(plan, "base/5/16384", 6, Was("base/5/16384", 10)));
        // Cut to 8 blocks, but 6 long now: cut again after this backup's start, which no summary shows.
        Assert.Null(Read(plan, "base/5/16385", 6, Was("base/5/16385", 10)));
        Assert.Equal(2, plan.FilesReadWhole);
    }

    [Fact]
    public void ARelationDroppedOrCreatedAgainUnderTheSameFileNodeIsReadWhole()
    {
        // Dropped, and a new relation got the same relfilenode: limit 0 (the commit's dropped relations, XLOG_SMGR_CREATE).
        var plan = Plan([Limit(16384, 0), Block(16384, 0), Limit(16390, 0)]);
        Assert.Null(Read(plan, "base/5/16384", 3, Was("base/5/16384", 10)));
        // A dropped relation's rows are ignored for the files that are still there.
        Assert.Equal("", Read(plan, "base/5/16391", 3, Was("base/5/16391", 3)));
    }

    [Fact]
    public void ANewFileAnotherForkAnUnloggedRelationAndAnOddSizeAreReadWhole()
    {
        var plan = Plan([Block(16384, 1)], "base/5/16400", "base/5/16400_init", "base/5/16384");

        Assert.Null(Read(plan, "base/5/16384", 10, null));
        Assert.Null(Read(plan, "base/5/16384_fsm", 3, Was("base/5/16384_fsm", 3)));
        Assert.Null(Read(plan, "base/5/16384_vm", 1, Was("base/5/16384_vm", 1)));
        // An unlogged relation: its main fork changes without WAL.
        Assert.Null(Read(plan, "base/5/16400", 2, Was("base/5/16400", 2)));
        Assert.Null(plan.BlocksToRead("base/5/16384", 10 * BlockSize + 100, Was("base/5/16384", 10)));
        // A file the reference has whole (not as a relation file), and one that is no relation file at all.
        Assert.Null(Read(plan, "base/5/16384", 10, new BackupEntry("base/5/16384", 0, 10 * BlockSize, "sha", 0x180)));
        Assert.Null(Read(plan, "base/5/pg_filenode.map", 1, Was("base/5/pg_filenode.map", 1)));
        Assert.Equal(7, plan.FilesReadWhole);
    }

    [Fact]
    public void ADatabaseCreatedOrDroppedSinceTheReferenceHasEveryFileReadWhole()
    {
        // Relfilenode 0: the database as a whole (CREATE DATABASE ... FILE_COPY copies files the WAL does not list).
        var plan = Plan([new WalSummaryRow(0, Spc, Db, 0, 0, true)]);
        Assert.Null(Read(plan, "base/5/16384", 10, Was("base/5/16384", 10)));
        Assert.Equal("", Read(plan, "base/6/16384", 10, Was("base/6/16384", 10)));
    }

    [Fact]
    public void SegmentsTablespacesAndTheSharedCatalogAreMappedAsPostgreSQLNamesThem()
    {
        var plan = Plan([
            Block(16384, SegmentBlocks + 3), Block(16384, 2), Limit(16388, SegmentBlocks / 2),
            Block(16390, 4, db: 7, spc: 16500), Block(1262, 0, db: 0, spc: 1664),
        ]);
        Assert.Equal("3", Read(plan, "base/5/16384.1", 10, Was("base/5/16384.1", 10)));
        Assert.Equal("2", Read(plan, "base/5/16384", SegmentBlocks, Was("base/5/16384", SegmentBlocks)));
        // A limit in the first segment: the second is read whole.
        Assert.Null(Read(plan, "base/5/16388.1", 10, Was("base/5/16388.1", 10)));
        Assert.Equal("4", Read(plan, "pg_tblspc/16500/PG_17_202406281/7/16390", 8, Was("pg_tblspc/16500/PG_17_202406281/7/16390", 8)));
        Assert.Equal("", Read(plan, "base/7/16390", 8, Was("base/7/16390", 8)));
        Assert.Equal("0", Read(plan, "global/1262", 1, Was("global/1262", 1)));
        // More blocks than a segment holds: something is odd, read it whole.
        Assert.Null(Read(plan, "base/5/16399", SegmentBlocks + 1, Was("base/5/16399", SegmentBlocks + 1)));
    }

    [Fact]
    public void ABlockNumberNoRelationCanHaveIsRefused()
    {
        var plan = new WalSummaryPlan(BlockSize, SegmentBlocks, []);
        Assert.Throws<InvalidDataException>(() => plan.Add(Block(16384, -1)));
        Assert.Throws<InvalidDataException>(() => plan.Add(Block(16384, 1L << 32)));
    }

    [Fact]
    public void APlanRefusesToHoldMoreRowsThanItsBound()
    {
        var plan = new WalSummaryPlan(BlockSize, SegmentBlocks, []);
        for (var i = 0; i < WalSummaryPlan.MaxBlocks; i++) Assert.True(plan.Add(Block((uint)(16384 + i / 100000), i % 100000)));
        Assert.False(plan.Add(Block(16384, 100001)));
    }
}
