using CloudArchive.Core;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

public sealed class WalFileNameTests
{
    private const long Mib = 1024 * 1024;

    [Theory]
    [InlineData("000000010000000000000001", WalFileKind.Segment, 1u, 0u, 1u)]
    [InlineData("0000000A00000003000000FF", WalFileKind.Segment, 10u, 3u, 0xFFu)]
    [InlineData("FFFFFFFFFFFFFFFFFFFFFFFF", WalFileKind.Segment, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu)]
    [InlineData("000000010000000000000003.partial", WalFileKind.Partial, 1u, 0u, 3u)]
    [InlineData("000000010000000000000002.00000028.backup", WalFileKind.BackupHistory, 1u, 0u, 2u)]
    [InlineData("00000003000000010000000A.0A1B2C3D.backup", WalFileKind.BackupHistory, 3u, 1u, 0xAu)]
    [InlineData("00000002.history", WalFileKind.History, 2u, 0u, 0u)]
    [InlineData("0000001F.history", WalFileKind.History, 0x1Fu, 0u, 0u)]
    public void ParsesEveryKind(string text, WalFileKind kind, uint timeline, uint log, uint seg)
    {
        Assert.True(WalFileName.TryParse(text, out var name));
        Assert.Equal(new WalFileName(text, kind, timeline, log, seg), name);
        Assert.Equal(name, WalFileName.Parse(text));
        Assert.Equal(text, name.ToString());
        Assert.Equal(kind != WalFileKind.History, name.HasSegmentNumber);
    }

    [Theory]
    [InlineData("000000010000000000000003.partial", "000000010000000000000003")]
    [InlineData("000000010000000000000002.00000028.backup", "000000010000000000000002")]
    [InlineData("000000010000000000000002", "000000010000000000000002")]
    public void SegmentPartNamesTheSegment(string text, string segment) =>
        Assert.Equal(segment, WalFileName.Parse(text).SegmentPart);

    [Theory]
    [InlineData("")]
    [InlineData("00000001000000000000000a")]                       // lower-case hex
    [InlineData("0000000a0000000000000001")]
    [InlineData("000000000000000000000001")]                       // timeline 0
    [InlineData("000000000000000000000001.partial")]
    [InlineData("00000000.history")]
    [InlineData("0000000a.history")]
    [InlineData("00000001000000000000001")]                        // 23 characters
    [InlineData("0000000100000000000000011")]                      // 25 characters
    [InlineData("0000002.history")]
    [InlineData("000000002.history")]
    [InlineData("000000010000000000000001.PARTIAL")]
    [InlineData("000000010000000000000001.partial.partial")]
    [InlineData("000000010000000000000002.0000028.backup")]
    [InlineData("000000010000000000000002.0000002g.backup")]
    [InlineData("000000010000000000000002.00000028.BACKUP")]
    [InlineData("000000010000000000000002.00000028")]
    [InlineData("00000001000000000000000G")]
    [InlineData(" 000000010000000000000001")]
    [InlineData("000000010000000000000001\n")]                     // a trailing newline is not part of a name
    [InlineData("00000002.history\n")]
    [InlineData("000000010000000000000003.partial\n")]
    [InlineData("pg_wal/000000010000000000000001")]
    [InlineData("RECOVERYXLOG")]
    [InlineData("000000010000000000000001.zst")]
    public void RejectsBadNames(string text)
    {
        Assert.False(WalFileName.TryParse(text, out _));
        var e = Assert.ThrowsAny<CloudArchiveException>(() => WalFileName.Parse(text));
        Assert.Equal(ExitCode.InvalidInput, e.ExitCode);
    }

    public static TheoryData<long, ulong, string, string> Boundaries => new()
    {
        // 16 MiB: 256 segments per log id.
        { 16 * Mib, 0, "000000010000000000000000", "0/0" },
        { 16 * Mib, 1, "000000010000000000000001", "0/1000000" },
        { 16 * Mib, 0xFF, "0000000100000000000000FF", "0/FF000000" },
        { 16 * Mib, 0x100, "000000010000000100000000", "1/0" },
        { 16 * Mib, 0x101, "000000010000000100000001", "1/1000000" },
        { 16 * Mib, 0xFFFF_FFFFUL * 256 + 0xFF, "00000001FFFFFFFF000000FF", "FFFFFFFF/FF000000" },
        // 1 GiB: 4 segments per log id.
        { 1024 * Mib, 3, "000000010000000000000003", "0/C0000000" },
        { 1024 * Mib, 4, "000000010000000100000000", "1/0" },
        { 1024 * Mib, 9, "000000010000000200000001", "2/40000000" },
        // 1 MiB: 4096 segments per log id.
        { Mib, 0xFFF, "000000010000000000000FFF", "0/FFF00000" },
        { Mib, 0x1000, "000000010000000100000000", "1/0" },
        { Mib, 0x1001, "000000010000000100000001", "1/100000" },
    };

    [Theory]
    [MemberData(nameof(Boundaries))]
    public void SegmentNumbersNamesAndLsnsRoundTrip(long segmentSize, ulong segment, string name, string startLsn)
    {
        var made = WalFileName.ForSegment(1, segment, segmentSize);
        Assert.Equal(name, made.Name);
        Assert.Equal(WalFileKind.Segment, made.Kind);

        var parsed = WalFileName.Parse(name);
        Assert.Equal(made, parsed);
        Assert.Equal(segment, parsed.SegmentNumber(segmentSize));
        Assert.Equal(startLsn, parsed.StartLsn(segmentSize).ToString());
        Assert.Equal(Lsn.Parse(startLsn).Value, segment * (ulong)segmentSize);
    }

    [Theory]
    [InlineData(Mib)]
    [InlineData(16 * Mib)]
    [InlineData(1024 * Mib)]
    public void ConsecutiveSegmentsAcrossTheLogIdBoundaryAreConsecutive(long segmentSize)
    {
        var perId = WalFileName.SegmentsPerXLogId(segmentSize);
        Assert.Equal(0x1_0000_0000UL, perId * (ulong)segmentSize);
        for (var n = perId * 3 - 2; n < perId * 3 + 2; n++)
        {
            var a = WalFileName.ForSegment(7, n, segmentSize);
            var b = WalFileName.ForSegment(7, n + 1, segmentSize);
            Assert.True(string.CompareOrdinal(a.Name, b.Name) < 0, $"{a} sorts before {b}");
            Assert.Equal(n + 1, WalFileName.Parse(b.Name).SegmentNumber(segmentSize));
            Assert.Equal(a.StartLsn(segmentSize).Value + (ulong)segmentSize, b.StartLsn(segmentSize).Value);
            Assert.Equal(7u, b.Timeline);
        }
    }

    [Theory]
    [InlineData(1024 * 1024, true)]
    [InlineData(16 * 1024 * 1024, true)]
    [InlineData(1024L * 1024 * 1024, true)]
    [InlineData(512 * 1024, false)]
    [InlineData(3 * 1024 * 1024, false)]
    [InlineData(2048L * 1024 * 1024, false)]
    [InlineData(0, false)]
    public void ValidSegmentSizesArePowersOfTwoFromOneMibToOneGib(long size, bool valid) =>
        Assert.Equal(valid, WalFileName.IsValidSegmentSize(size));

    [Fact]
    public void TimelineOneHistoryIsAValidNameBecausePostgreSqlAsksForIt()
    {
        // Recovery probes 00000001.history; refusing the name would fail restore_command instead of "absent".
        Assert.True(WalFileName.TryParse("00000001.history", out var n));
        Assert.Equal(WalFileKind.History, n.Kind);
        Assert.Equal(1u, n.Timeline);
    }
}
