using System.Globalization;
using System.Text;
using CloudArchive.Core.Spool;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Operations;

/// <summary>What the database host adds to the store's metrics: PostgreSQL's archiving backlog and the workers.</summary>
/// <param name="ReadySegments">Files PostgreSQL has marked ready in pg_wal/archive_status and not yet seen archived.</param>
/// <param name="AsyncWorkerRunning">An async push worker holds its lock in the spool.</param>
/// <param name="PrefetchWorkerRunning">A prefetch worker holds its lock in the spool.</param>
/// <param name="AgentRunning">The cluster's agent (--agent) holds its lock in the spool.</param>
public sealed record HostState(int ReadySegments, bool AsyncWorkerRunning, bool PrefetchWorkerRunning, bool AgentRunning = false)
{
    /// <summary>The state of the data directory <paramref name="pgdata"/> and its spool (the configured one, else pg_wal/.cloudarchive).</summary>
    public static HostState Read(string pgdata, string? spoolDir)
    {
        var status = Path.Combine(pgdata, "pg_wal", "archive_status");
        if (!Directory.Exists(status))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"{pgdata} is not a data directory (no pg_wal/archive_status)");
        var ready = Directory.EnumerateFiles(status, "*.ready").Count();
        var spool = SpoolLocation.Resolve(spoolDir, Path.GetFullPath(pgdata))!;
        return new HostState(ready,
            Running(Path.Combine(spool, "push", "worker.lock")),
            Running(Path.Combine(spool, PrefetchSpool.SubDirectory, "prefetch.lock")),
            Running(WalAgent.LockPath(spool)));
    }

    /// <summary>A worker holds this lock; no lock file (or none this user may open) is no worker, and nothing is created.</summary>
    private static bool Running(string lockPath)
    {
        try
        {
            return File.Exists(lockPath) && SpoolLock.IsHeld(lockPath);
        }
        catch (UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot open {lockPath} to see whether a worker runs: run metrics as the cluster's user");
        }
    }
}

/// <summary>
/// The archive's state in the Prometheus text exposition format (version 0.0.4): for a node_exporter textfile
/// collector or a sidecar. Every name starts with <c>cloudarchive_</c>; the labels are the store (its description,
/// which never holds a secret) and, for WAL, the timeline.
/// </summary>
public static class ArchiveMetrics
{
    /// <summary>The exposition of <paramref name="status"/> (null: the store could not be read) at <paramref name="now"/>.</summary>
    public static string Format(string store, StatusReport? status, HostState? host, DateTimeOffset now)
    {
        var w = new Writer(store);
        w.Gauge("up", "1 when the store's manifest could be read, else 0", status is null ? 0 : 1);
        if (status is not null)
        {
            if (status.LastArchivedAt is { } at)
            {
                w.Gauge("last_archived_timestamp_seconds", "When the WAL file archived last was archived (Unix time), whatever its timeline", at.ToUnixTimeSeconds());
                w.Gauge("last_archived_age_seconds", "Seconds since the newest WAL file was archived", Seconds(now - at));
            }
            if (status.Window is { } win)
            {
                w.Gauge("pitr_window_start_timestamp_seconds", "The earliest point-in-time recovery can reach: the end of the oldest restorable backup",
                    win.Earliest.ToUnixTimeSeconds());
                w.Gauge("pitr_window_end_timestamp_seconds", "About the latest point recovery can reach without a gap", win.Latest.ToUnixTimeSeconds());
            }
            w.Gauge("backups", "Base backups recorded in the store", status.Backups.Count);
            w.Gauge("backups_unrestorable", "Recorded base backups that cannot be restored from the store", status.Unrestorable.Count);
            if (status.NewestBackup is { } b)
            {
                w.Gauge("newest_backup_timestamp_seconds", "When the newest base backup ended (Unix time)", b.StopTime.ToUnixTimeSeconds());
                w.Gauge("newest_backup_age_seconds", "Seconds since the newest base backup ended", Seconds(now - b.StopTime));
                w.Gauge("newest_backup_size_bytes", "The newest base backup's size before compression", b.Size);
                w.Gauge("newest_backup_stored_bytes", "What the newest base backup takes in the store", b.StoredSize);
                w.Gauge("newest_backup_duration_seconds", "How long the newest base backup took", Seconds(b.StopTime - b.StartTime));
            }
            w.Gauge("dumps", "SQL dumps recorded in the store", status.Dumps.Count);
            if (status.NewestDump is { } dump)
                w.Gauge("newest_dump_age_seconds", "Seconds since the newest SQL dump ended", Seconds(now - dump.EndTime));
            w.Gauge("wal_stored_bytes", "What the archived WAL takes in the store", status.WalStoredBytes);
            if (status.LastDrill is { } d)
            {
                w.Gauge("drill_last_success", "1 when the newest restore drill passed, else 0", d.Passed ? 1 : 0);
                w.Gauge("drill_last_timestamp_seconds", "When the newest restore drill ended (Unix time)", d.EndTime.ToUnixTimeSeconds());
                w.Gauge("drill_last_duration_seconds", "How long the newest restore drill took in all", Math.Round(d.TotalSeconds, 3));
                if (d.RestoreSeconds is { } restore)
                    w.Gauge("drill_last_restore_seconds", "The newest drill's restore time: download, replay, a server that accepts queries",
                        Math.Round(restore, 3));
                if (d.DataAgeSeconds is { } age)
                    w.Gauge("drill_last_data_age_seconds", "How old the data at the point the newest drill reached was when it ended", Math.Round(age, 3));
            }
            w.Gauge("problems", "Problems status reports (gaps, unrestorable backups, unreadable records, no backup)", status.Problems.Count);
            w.Family("wal_segments", "Archived WAL segments per timeline", "gauge");
            foreach (var t in status.Wal.Timelines) w.Sample("wal_segments", t.Segments, ("timeline", t.Timeline.ToString(CultureInfo.InvariantCulture)));
            w.Family("wal_gaps", "Gaps (runs of missing segments) per timeline: recovery cannot replay past the first", "gauge");
            foreach (var t in status.Wal.Timelines) w.Sample("wal_gaps", t.Gaps.Count, ("timeline", t.Timeline.ToString(CultureInfo.InvariantCulture)));
            w.Family("timeline_last_archived_timestamp_seconds", "When each timeline's last segment was archived (Unix time): a timeline that stopped is a copy " +
                "or an old primary", "gauge");
            foreach (var (timeline, _, archivedAt, _) in status.LastPerTimeline)
                w.Sample("timeline_last_archived_timestamp_seconds", archivedAt.ToUnixTimeSeconds(), ("timeline", timeline.ToString(CultureInfo.InvariantCulture)));
            w.Family("wal_streamed_lsn_bytes", "How far wal-receive's pieces of the segment in progress reach per timeline (an LSN as a byte position)",
                "gauge");
            foreach (var e in status.Streamed)
                w.Sample("wal_streamed_lsn_bytes", e.Reach.Value, ("timeline", e.Segment.Timeline.ToString(CultureInfo.InvariantCulture)));
            w.Family("wal_streamed_timestamp_seconds", "When wal-receive last stored a piece per timeline (Unix time): now minus this is how far " +
                "behind the store is while the server writes", "gauge");
            foreach (var e in status.Streamed.Where(e => e.StoredAt is not null))
                w.Sample("wal_streamed_timestamp_seconds", e.StoredAt!.Value.ToUnixTimeSeconds(), ("timeline", e.Segment.Timeline.ToString(CultureInfo.InvariantCulture)));
        }
        if (status?.SecondStore is { } two)
        {
            w.Family("store_up", "1 when the store could be listed, per store", "gauge");
            w.SampleOf(two.Store, "store_up", two.Failure is null ? 1 : 0);
            w.Family("store_lacking_objects", "Objects of the archive the first store holds and this one lacks (a second store, --store-2)", "gauge");
            w.SampleOf(two.Store, "store_lacking_objects", two.LackingObjects);
            w.Family("store_lacking_bytes", "Their size in the first store", "gauge");
            w.SampleOf(two.Store, "store_lacking_bytes", two.LackingBytes);
            w.Family("store_lacking_wal_segments", "WAL files the first store holds and this one lacks", "gauge");
            w.SampleOf(two.Store, "store_lacking_wal_segments", two.LackingSegments);
            w.Family("store_lacking_backups", "Backups with an object the first store holds and this one lacks", "gauge");
            w.SampleOf(two.Store, "store_lacking_backups", two.LackingBackups.Count);
            w.Family("store_lacking_dumps", "Dumps with an object the first store holds and this one lacks", "gauge");
            w.SampleOf(two.Store, "store_lacking_dumps", two.LackingDumps.Count);
            if (two.BacklogObjects is { } backlog)
            {
                w.Family("store_backlog_objects", "Objects waiting in the spool's backlog to be copied to this store", "gauge");
                w.SampleOf(two.Store, "store_backlog_objects", backlog);
                w.Family("store_backlog_oldest_age_seconds", "Seconds since the oldest object of the backlog was missed (0: empty)", "gauge");
                w.SampleOf(two.Store, "store_backlog_oldest_age_seconds", two.BacklogOldest is { } oldest ? Seconds(now - oldest) : 0);
            }
        }
        if (host is not null)
        {
            w.Gauge("ready_segments", "WAL files PostgreSQL has marked ready and not yet seen archived (pg_wal/archive_status)", host.ReadySegments);
            w.Gauge("async_worker_running", "1 when an async push worker runs for this data directory", host.AsyncWorkerRunning ? 1 : 0);
            w.Gauge("prefetch_worker_running", "1 when a prefetch worker runs for this data directory", host.PrefetchWorkerRunning ? 1 : 0);
            w.Gauge("agent_running", "1 when the agent of this data directory runs (--agent)", host.AgentRunning ? 1 : 0);
        }
        return w.ToString();
    }

    private static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 3);

    private sealed class Writer(string store)
    {
        private readonly StringBuilder _text = new();

        public void Gauge(string name, string help, double value)
        {
            Family(name, help, "gauge");
            Sample(name, value);
        }

        public void Family(string name, string help, string type)
        {
            var text = help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
            _text.Append(CultureInfo.InvariantCulture, $"# HELP cloudarchive_{name} {text}\n");
            _text.Append(CultureInfo.InvariantCulture, $"# TYPE cloudarchive_{name} {type}\n");
        }

        public void Sample(string name, double value, params (string Name, string Value)[] labels) => SampleOf(store, name, value, labels);

        /// <summary>A sample of another store than the one the writer reports (the second store, --store-2).</summary>
        public void SampleOf(string of, string name, double value, params (string Name, string Value)[] labels)
        {
            _text.Append("cloudarchive_").Append(name).Append("{store=\"").Append(Escape(of)).Append('"');
            foreach (var (k, v) in labels) _text.Append(',').Append(k).Append("=\"").Append(Escape(v)).Append('"');
            _text.Append("} ").Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }

        private static string Escape(string value) =>
            value.Replace("\\", "\\\\", StringComparison.Ordinal)
                .Replace("\"", "\\\"", StringComparison.Ordinal)
                .Replace("\n", "\\n", StringComparison.Ordinal);

        public override string ToString() => _text.ToString();
    }
}
