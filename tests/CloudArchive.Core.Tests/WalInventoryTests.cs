using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

public sealed class WalInventoryTests
{
    private const long Mib = 1024 * 1024;

    private static WalFileName[] Names(params string[] names) => names.Select(WalFileName.Parse).ToArray();

    [Fact]
    public void RangesAndGapsPerTimeline()
    {
        var names = Names(
            "000000020000000000000008", "000000010000000000000006", "000000010000000000000001",
            "000000010000000000000002", "000000010000000000000003", "000000010000000000000005",
            "000000010000000000000009", "000000020000000000000007", "00000002.history",
            "000000010000000000000003.partial", "000000010000000000000002.00000028.backup");

        var inv = WalInventory.Build(names, 16 * Mib, "7301234567890123456");

        Assert.Equal(16 * Mib, inv.SegmentSize);
        Assert.Equal("7301234567890123456", inv.SystemIdentifier);
        Assert.True(inv.HasGaps);
        Assert.Equal([1u, 2u], inv.Timelines.Select(t => t.Timeline));

        var t1 = inv.Timelines[0];
        Assert.False(t1.HasHistoryFile);
        Assert.Equal(6, t1.Segments);
        Assert.Equal(
            [
                new WalRange("000000010000000000000001", "000000010000000000000003", 3, Lsn.Parse("0/1000000"), Lsn.Parse("0/4000000")),
                new WalRange("000000010000000000000005", "000000010000000000000006", 2, Lsn.Parse("0/5000000"), Lsn.Parse("0/7000000")),
                new WalRange("000000010000000000000009", "000000010000000000000009", 1, Lsn.Parse("0/9000000"), Lsn.Parse("0/A000000")),
            ],
            t1.Ranges);
        Assert.Equal(
            [
                new WalRange("000000010000000000000004", "000000010000000000000004", 1, Lsn.Parse("0/4000000"), Lsn.Parse("0/5000000")),
                new WalRange("000000010000000000000007", "000000010000000000000008", 2, Lsn.Parse("0/7000000"), Lsn.Parse("0/9000000")),
            ],
            t1.Gaps);
        Assert.Equal(["000000010000000000000003.partial"], t1.Partials);
        Assert.Equal(["000000010000000000000002.00000028.backup"], t1.BackupHistoryFiles);

        var t2 = inv.Timelines[1];
        Assert.True(t2.HasHistoryFile);
        Assert.Equal(2, t2.Segments);
        Assert.Equal(
            [new WalRange("000000020000000000000007", "000000020000000000000008", 2, Lsn.Parse("0/7000000"), Lsn.Parse("0/9000000"))],
            t2.Ranges);
        Assert.Empty(t2.Gaps);
        Assert.Empty(t2.Partials);
    }

    [Fact]
    public void ARunAcrossTheLogIdBoundaryIsOneRange()
    {
        var inv = WalInventory.Build(
            Names("0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"),
            16 * Mib, null);

        var t = Assert.Single(inv.Timelines);
        var r = Assert.Single(t.Ranges);
        Assert.Equal(new WalRange("0000000100000000000000FE", "000000010000000100000001", 4, Lsn.Parse("0/FE000000"), Lsn.Parse("1/2000000")), r);
        Assert.Empty(t.Gaps);
        Assert.False(inv.HasGaps);
    }

    [Fact]
    public void AGapAcrossTheLogIdBoundaryIsNamedInSegments()
    {
        var inv = WalInventory.Build(Names("0000000100000000000000FE", "000000010000000100000001"), 16 * Mib, null);
        var gap = Assert.Single(Assert.Single(inv.Timelines).Gaps);
        Assert.Equal(new WalRange("0000000100000000000000FF", "000000010000000100000000", 2, Lsn.Parse("0/FF000000"), Lsn.Parse("1/1000000")), gap);
    }

    [Fact]
    public void SegmentSizeDecidesWhatIsConsecutive()
    {
        // With 1 GiB segments a log id holds 4 segments: ...00000003 is followed by ...0000000100000000.
        var names = Names("000000010000000000000003", "000000010000000100000000");
        var gib = WalInventory.Build(names, 1024 * Mib, null);
        Assert.Equal(
            new WalRange("000000010000000000000003", "000000010000000100000000", 2, Lsn.Parse("0/C0000000"), Lsn.Parse("1/40000000")),
            Assert.Single(gib.Timelines[0].Ranges));
        Assert.False(gib.HasGaps);

        // With 16 MiB segments the same names are 253 segments apart.
        var small = WalInventory.Build(names, 16 * Mib, null);
        var gap = Assert.Single(small.Timelines[0].Gaps);
        Assert.Equal(252, gap.Segments);
        Assert.Equal("000000010000000000000004", gap.First);
        Assert.Equal("0000000100000000000000FF", gap.Last);
    }

    [Fact]
    public void DuplicateNamesCountOnce()
    {
        var inv = WalInventory.Build(Names("000000010000000000000001", "000000010000000000000001", "000000010000000000000002"), Mib, null);
        var t = Assert.Single(inv.Timelines);
        Assert.Equal(2, t.Segments);
        Assert.Equal(2, Assert.Single(t.Ranges).Segments);
    }

    [Fact]
    public void ATimelineWithOnlyAHistoryFileHasNoSegments()
    {
        var inv = WalInventory.Build(Names("000000010000000000000001", "00000003.history"), Mib, null);
        Assert.Equal([1u, 3u], inv.Timelines.Select(t => t.Timeline));
        var t3 = inv.Timelines[1];
        Assert.True(t3.HasHistoryFile);
        Assert.Equal(0, t3.Segments);
        Assert.Empty(t3.Ranges);
        Assert.Empty(t3.Gaps);
        Assert.False(inv.HasGaps);
    }

    [Fact]
    public void PartialsAndBackupFilesAreNotSegments()
    {
        var inv = WalInventory.Build(
            Names("000000010000000000000001", "000000010000000000000002.partial", "000000010000000000000003"),
            Mib, null);
        var t = Assert.Single(inv.Timelines);
        Assert.Equal(2, t.Segments);
        Assert.Equal("000000010000000000000002", Assert.Single(t.Gaps).First);
        Assert.Equal(["000000010000000000000002.partial"], t.Partials);
    }

    [Fact]
    public void NothingArchivedIsAnEmptyInventory()
    {
        var inv = WalInventory.Build([], 16 * Mib, null);
        Assert.Empty(inv.Timelines);
        Assert.False(inv.HasGaps);
    }
}
