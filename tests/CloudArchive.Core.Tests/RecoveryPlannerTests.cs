using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>"What do I need to restore to T?" as pure logic: backup choice, timeline path, WAL range, refusals.</summary>
public sealed class RecoveryPlannerTests
{
    private const long Seg = 16 * 1024 * 1024;
    private static readonly DateTimeOffset T0 = new(2026, 11, 24, 10, 0, 0, TimeSpan.Zero);

    private static BackupRecord Backup(string id, uint tli, ulong startSeg, ulong stopSeg, int minutes) => new()
    {
        Id = id, SystemIdentifier = "1", ServerVersionNum = 150000, Timeline = tli,
        StartLsn = new Lsn(startSeg * Seg + 0x28).ToString(), StopLsn = new Lsn(stopSeg * Seg + 0x100).ToString(),
        StartWalFile = WalFileName.ForSegment(tli, startSeg, Seg).Name, StopWalFile = WalFileName.ForSegment(tli, stopSeg, Seg).Name,
        StartTime = T0.AddMinutes(minutes - 1), StopTime = T0.AddMinutes(minutes), WalSegmentSize = Seg,
        BackupLabel = "", Compression = "zstd", Size = 100, StoredSize = 10, Bundles = [], Entries = [], Tablespaces = [],
    };

    private static Dictionary<uint, SortedSet<ulong>> Segments(params (uint Tli, ulong From, ulong To)[] runs)
    {
        var d = new Dictionary<uint, SortedSet<ulong>>();
        foreach (var (tli, from, to) in runs)
        {
            if (!d.TryGetValue(tli, out var set)) d[tli] = set = [];
            for (var s = from; s <= to; s++) set.Add(s);
        }
        return d;
    }

    private static readonly Dictionary<uint, List<TimelineSwitch>> NoHistory = [];
    private static readonly Dictionary<string, long> NoSizes = [];

    [Fact]
    public void TimeTargetPicksTheLatestBackupThatEndedBeforeIt()
    {
        BackupRecord[] backups = [Backup("a", 1, 2, 2, 0), Backup("b", 1, 5, 5, 30), Backup("c", 1, 9, 9, 60)];

        var plan = RecoveryPlanner.Plan(backups, new RecoveryTarget(TargetKind.Time, T0.AddMinutes(45).ToString("u")), null,
            Segments((1, 2, 12)), NoHistory, NoSizes);

        Assert.Equal("b", plan.Backup.Id);
        Assert.Equal("000000010000000000000005", plan.FirstWalSegment);
        Assert.Equal("00000001000000000000000C", plan.LastWalSegment);
    }

    [Fact]
    public void ATargetBeforeEveryBackupIsRefused()
    {
        var e = Assert.Throws<CloudArchiveException>(() => RecoveryPlanner.Plan([Backup("a", 1, 2, 2, 10)],
            new RecoveryTarget(TargetKind.Time, T0.ToString("u")), null, Segments((1, 2, 5)), NoHistory, NoSizes));
        Assert.Equal(ExitCode.NoRecoveryPath, e.ExitCode);
        Assert.Contains("before the end of every backup", e.Message);
    }

    [Fact]
    public void AGapBeforeTheBackupIsConsistentIsRefusedAndNamed()
    {
        var e = Assert.Throws<CloudArchiveException>(() => RecoveryPlanner.Plan([Backup("a", 1, 2, 4, 0)],
            new RecoveryTarget(TargetKind.EndOfArchive, null), null, Segments((1, 2, 3), (1, 5, 9)), NoHistory, NoSizes));
        Assert.Equal(ExitCode.NoRecoveryPath, e.ExitCode);
        Assert.Contains("000000010000000000000004", e.Message);
    }

    [Fact]
    public void AGapAfterTheBackupIsNotTheEndOfTheArchive()
    {
        // Segment 7 is missing while 8 and 9 are archived: "latest" cannot be reached, and the plan says where and why.
        var latest = RecoveryPlanner.Plan([Backup("a", 1, 2, 3, 0)],
            new RecoveryTarget(TargetKind.EndOfArchive, null), null, Segments((1, 2, 6), (1, 8, 9)), NoHistory, NoSizes);
        Assert.Equal("000000010000000000000006", latest.LastWalSegment);
        var e = latest.Gap!;
        Assert.Equal(ExitCode.NoRecoveryPath, e.ExitCode);
        Assert.Contains("gap: segment 000000010000000000000007", e.Message);
        Assert.Contains("goes on from 000000010000000000000008", e.Message);

        // A time target may lie before the gap: planned, with the gap named.
        var plan = RecoveryPlanner.Plan([Backup("a", 1, 2, 3, 0)], new RecoveryTarget(TargetKind.Time, T0.AddMinutes(5).ToString("u")), null,
            Segments((1, 2, 6), (1, 8, 9)), NoHistory, NoSizes);
        Assert.Equal("000000010000000000000006", plan.LastWalSegment);
        Assert.Contains(plan.Notes, n => n.Contains("000000010000000000000007 of timeline 1 is missing", StringComparison.Ordinal));
    }

    [Fact]
    public void LatestTimelineIsFollowedThroughItsHistory()
    {
        // Timeline 2 branched from 1 in segment 7; the segment holding the switch is read from timeline 2.
        var histories = new Dictionary<uint, List<TimelineSwitch>> { [2] = [new TimelineSwitch(1, new Lsn(7 * (ulong)Seg + 0x500))] };

        var plan = RecoveryPlanner.Plan([Backup("a", 1, 2, 3, 0)], new RecoveryTarget(TargetKind.EndOfArchive, null), null,
            Segments((1, 2, 6), (2, 7, 10)), histories, NoSizes);

        Assert.Equal([1u, 2u], plan.TimelinePath);
        Assert.Equal(2u, plan.TargetTimeline);
        Assert.Equal("00000002000000000000000A", plan.LastWalSegment);
        Assert.Equal(new Lsn(7 * (ulong)Seg + 0x500), plan.Wal[0].EndsAt);
    }

    [Fact]
    public void LatestNamesTheSiblingTimelinesItChoseBetween()
    {
        // A copy promoted to timeline 2 and production failed over to 3, both from timeline 1.
        var histories = new Dictionary<uint, List<TimelineSwitch>>
        {
            [2] = [new TimelineSwitch(1, new Lsn(7 * (ulong)Seg + 0x500))],
            [3] = [new TimelineSwitch(1, new Lsn(8 * (ulong)Seg + 0x500))],
        };

        var plan = RecoveryPlanner.Plan([Backup("a", 1, 2, 3, 0)], new RecoveryTarget(TargetKind.EndOfArchive, null), null,
            Segments((1, 2, 8), (2, 7, 9), (3, 8, 12)), histories, NoSizes);

        Assert.Equal(3u, plan.TargetTimeline);
        Assert.Contains(plan.Notes, n => n.Contains("timelines 2, 3 all branch from timeline 1; following 3", StringComparison.Ordinal));
    }

    [Fact]
    public void ATimelineThatBranchedBeforeTheBackupIsNotOnItsPath()
    {
        var histories = new Dictionary<uint, List<TimelineSwitch>> { [2] = [new TimelineSwitch(1, new Lsn(1 * (ulong)Seg))] };

        var latest = RecoveryPlanner.Plan([Backup("a", 1, 4, 5, 0)], new RecoveryTarget(TargetKind.EndOfArchive, null), null,
            Segments((1, 4, 8), (2, 1, 9)), histories, NoSizes);
        Assert.Equal(1u, latest.TargetTimeline);

        var e = Assert.Throws<CloudArchiveException>(() => RecoveryPlanner.Plan([Backup("a", 1, 4, 5, 0)],
            new RecoveryTarget(TargetKind.EndOfArchive, null, "2"), null, Segments((1, 4, 8), (2, 1, 9)), histories, NoSizes));
        Assert.Equal(ExitCode.NoRecoveryPath, e.ExitCode);
    }

    [Fact]
    public void AnImmediateTargetNeedsOnlyTheBackupsOwnWal()
    {
        var histories = new Dictionary<uint, List<TimelineSwitch>> { [2] = [new TimelineSwitch(1, new Lsn(20 * (ulong)Seg))] };

        var plan = RecoveryPlanner.Plan([Backup("a", 1, 2, 4, 0)], new RecoveryTarget(TargetKind.Immediate, null), null,
            Segments((1, 2, 4), (1, 9, 19), (2, 20, 21)), histories, NoSizes);

        Assert.Equal("000000010000000000000004", plan.LastWalSegment);
    }
}
