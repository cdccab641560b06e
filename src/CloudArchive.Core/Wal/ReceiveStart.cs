using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Wal;

/// <summary>
/// Where wal-receive resumes: the furthest byte the store holds of the server's history, from whole segments (its own
/// or archive_command's) and streamed pieces. A timeline's bytes count only up to where the server's history says it
/// ended: what a receiver stored past a switch point belongs to a branch the server does not have (a failover after
/// an asynchronous receiver got further than the promoted standby), and is left where it is.
/// </summary>
public static class ReceiveStart
{
    /// <summary>The end of the stored WAL on the server's history; null when the store holds none of it.</summary>
    /// <param name="history">The server's timeline history (its current timeline's .history, oldest first; empty on timeline 1).</param>
    public static Lsn? StoredEnd(IReadOnlyList<TimelineSwitch> history, uint current, IEnumerable<WalFileName> whole, IEnumerable<StreamedSegment> streamed,
        long segmentSize)
    {
        Lsn? best = null;
        void Reach(uint timeline, Lsn start, long bytes)
        {
            if (bytes <= 0 || !OnHistory(history, current, timeline, out var end) || (end is { } e && start >= e)) return;
            var reach = new Lsn(start.Value + (ulong)bytes);
            if (end is { } limit && reach > limit) reach = limit;
            if (best is not { } b || reach > b) best = reach;
        }
        foreach (var name in whole.Where(n => n.Kind == WalFileKind.Segment)) Reach(name.Timeline, name.StartLsn(segmentSize), segmentSize);
        foreach (var s in streamed) Reach(s.Segment.Timeline, s.Segment.StartLsn(segmentSize), s.Reach);
        return best;
    }

    /// <summary>The timeline of the server's history that holds <paramref name="position"/> (a switch point belongs to the next).</summary>
    public static uint TimelineOf(Lsn position, IReadOnlyList<TimelineSwitch> history, uint current)
    {
        foreach (var s in history)
            if (position < s.SwitchLsn) return s.Timeline;
        return current;
    }

    /// <summary>Whether <paramref name="timeline"/> is on the server's history, and where it ended (null: it is the current one).</summary>
    private static bool OnHistory(IReadOnlyList<TimelineSwitch> history, uint current, uint timeline, out Lsn? end)
    {
        end = null;
        if (timeline == current) return true;
        foreach (var s in history)
            if (s.Timeline == timeline)
            {
                end = s.SwitchLsn;
                return true;
            }
        return false;
    }

    /// <summary>The start of the segment holding <paramref name="position"/>: streaming always starts at a segment's first byte.</summary>
    public static Lsn SegmentStart(Lsn position, long segmentSize) => new(position.Value - position.Value % (ulong)segmentSize);
}
