using CloudArchive.Core.Backup;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>Where wal-receive resumes, and its spool: what the store holds counts only on the server's history.</summary>
public sealed class ReceiveStartTests : IDisposable
{
    private const long Size = 16 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("receive-start-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static WalFileName Seg(uint tli, ulong n) => WalFileName.ForSegment(tli, n, Size);

    private static StreamedSegment Streamed(uint tli, ulong n, long reach) =>
        new(Seg(tli, n), reach, [new StreamedPiece(Seg(tli, n), 0, reach, "k")]);

    [Fact]
    public void OnOneTimelineTheFurthestWholeSegmentOrStreamedByteIsTheEnd()
    {
        Assert.Null(ReceiveStart.StoredEnd([], 1, [], [], Size));
        Assert.Equal(new Lsn(4 * (ulong)Size), ReceiveStart.StoredEnd([], 1, [Seg(1, 2), Seg(1, 3)], [], Size));
        Assert.Equal(new Lsn(4 * (ulong)Size + 5000), ReceiveStart.StoredEnd([], 1, [Seg(1, 2), Seg(1, 3)], [Streamed(1, 4, 5000)], Size));
        // .history and .partial files are not where streaming resumes.
        Assert.Null(ReceiveStart.StoredEnd([], 1, [WalFileName.Parse("00000001000000000000000A.partial")], [], Size));
    }

    [Fact]
    public void BytesOfAnOldTimelinePastItsSwitchPointAndTimelinesOffTheHistoryAreNotCounted()
    {
        // Timeline 1 ended at 0/5000100 (segment 5 of 16 MiB); the server is on 2.
        var switchAt = new Lsn(5 * (ulong)Size + 0x100);
        List<TimelineSwitch> history = [new(1, switchAt)];
        // An asynchronous receiver got 1 MiB into segment 5 on timeline 1, and whole segment 6: a branch the server lacks.
        var end = ReceiveStart.StoredEnd(history, 2, [Seg(1, 6)], [Streamed(1, 5, 1 << 20)], Size);
        Assert.Equal(switchAt, end);
        Assert.Equal(2u, ReceiveStart.TimelineOf(end!.Value, history, 2));
        // Timeline 3 is another branch altogether.
        Assert.Equal(switchAt, ReceiveStart.StoredEnd(history, 2, [Seg(3, 9)], [Streamed(1, 5, 1 << 20)], Size));
        // Behind the switch point, the old timeline is streamed first.
        var behind = ReceiveStart.StoredEnd(history, 2, [Seg(1, 3)], [], Size)!.Value;
        Assert.Equal(1u, ReceiveStart.TimelineOf(behind, history, 2));
        Assert.Equal(new Lsn(4 * (ulong)Size), ReceiveStart.SegmentStart(new Lsn(4 * (ulong)Size + 77), Size));
    }

    [Fact]
    public void TheSpoolIsPrivateLockedAndItsLeftoversAreNotKept()
    {
        var root = Path.Combine(_dir, "spool");
        Directory.CreateDirectory(root);
        using (var spool = ReceiveSpool.Open(root, "cloudarchive"))
        {
            Assert.Equal(Path.Combine(root, "receive-cloudarchive"), spool.Directory);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(spool.Directory));
            File.WriteAllText(Path.Combine(spool.Directory, "000000010000000000000003.receiving"), "half a segment");
            var second = Assert.Throws<CloudArchiveException>(() => ReceiveSpool.Open(root, "cloudarchive"));
            Assert.Equal(ExitCode.Usage, second.ExitCode);
        }
        using (var again = ReceiveSpool.Open(root, "cloudarchive"))
            Assert.False(File.Exists(Path.Combine(again.Directory, "000000010000000000000003.receiving")));

        File.SetUnixFileMode(Path.Combine(root, "receive-cloudarchive"), (UnixFileMode)0x1ff);
        Assert.Equal(ExitCode.Usage, Assert.Throws<CloudArchiveException>(() => ReceiveSpool.Open(root, "cloudarchive")).ExitCode);

        Directory.CreateSymbolicLink(Path.Combine(root, "receive-linked"), _dir);
        Assert.Equal(ExitCode.Usage, Assert.Throws<CloudArchiveException>(() => ReceiveSpool.Open(root, "linked")).ExitCode);

        string temporary;
        using (var own = ReceiveSpool.Open(null, "cloudarchive")) temporary = own.Directory;
        Assert.False(Directory.Exists(temporary));
    }
}
