using System.Diagnostics;
using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Wal;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>
/// Asks the server being backed up (PostgreSQL 17+, summarize_wal = on) which blocks its WAL touched between the reference's
/// start LSN and this backup's, for <see cref="WalSummaryPlan"/>. Anything that keeps the summaries from proving the
/// whole range (an older major, summarize_wal off, a summarizer that does not catch up, a gap, another timeline, no right
/// to call the functions, more rows than the plan holds, a row no relation can have) gives null and one info line saying
/// why: every file is then read.
/// Runs on a connection of its own, so that nothing asked here can touch the backup's session.
/// </summary>
internal static class WalSummaries
{
    /// <summary>How long the summarizer may take to reach this backup's start LSN.</summary>
    private static readonly TimeSpan CatchUp = TimeSpan.FromSeconds(30);

    public static async Task<WalSummaryPlan?> ReadAsync(NpgsqlDataSource db, ClusterFacts facts, BackupRecord reference, Lsn start,
        IEnumerable<string> paths, CancellationToken ct)
    {
        var why = await TryReadAsync(db, facts, reference, start, paths, ct).ConfigureAwait(false);
        if (why.Plan is null) Log.Info($"WAL summaries not used ({why.Reason}): every file is read and compared with {reference.Id}");
        return why.Plan;
    }

    private static async Task<(WalSummaryPlan? Plan, string Reason)> TryReadAsync(NpgsqlDataSource db, ClusterFacts facts, BackupRecord reference,
        Lsn start, IEnumerable<string> paths, CancellationToken ct)
    {
        if (facts.ServerVersionNum < 170000) return (null, $"PostgreSQL {facts.ServerVersionNum / 10000} has none; 17 and later do");
        if (!Lsn.TryParse(reference.StartLsn, out var from)) return (null, $"the start LSN of {reference.Id} is not known");
        try
        {
            await using var conn = await db.OpenConnectionAsync(ct).ConfigureAwait(false);
            var (summarize, segment, timeline, redo) = await SettingsAsync(conn, ct).ConfigureAwait(false);
            if (summarize != "on") return (null, "summarize_wal is off");
            if (redo != start) return (null, $"the checkpoint this backup started from ({redo}) is not the one pg_control names now, so its timeline is not known");
            if (timeline != reference.Timeline)
                return (null, $"{reference.Id} is of timeline {reference.Timeline}, this backup of timeline {timeline}");
            if (!await CaughtUpAsync(conn, start, ct).ConfigureAwait(false))
                return (null, $"the WAL summarizer has not reached {start} after {CatchUp.TotalSeconds:0} s");
            var available = new List<WalSummaryFile>();
            await using (var cmd = new NpgsqlCommand("select tli, start_lsn::text, end_lsn::text from pg_available_wal_summaries()", conn))
            await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                    if (r.GetInt64(0) is > 0 and <= uint.MaxValue && Lsn.TryParse(r.GetString(1), out var s) && Lsn.TryParse(r.GetString(2), out var e))
                        available.Add(new WalSummaryFile((uint)r.GetInt64(0), s, e));
            if (WalSummaryPlan.Covering(available, timeline, from, start, out var missing) is not { } needed) return (null, missing);

            var plan = new WalSummaryPlan(facts.BlockSize, segment / facts.BlockSize, paths);
            foreach (var summary in needed)
            {
                // Main forks only: the plan reads no other fork by summary; relfilenode 0 is a database created or dropped.
                await using var cmd = new NpgsqlCommand("select relfilenode::int8, reltablespace::int8, reldatabase::int8, relforknumber, " +
                    "relblocknumber, is_limit_block from pg_wal_summary_contents($1::int8, $2::pg_lsn, $3::pg_lsn) " +
                    "where relforknumber = 0 or relfilenode = 0", conn);
                cmd.Parameters.AddWithValue((long)summary.Timeline);
                cmd.Parameters.AddWithValue(summary.Start.ToString());
                cmd.Parameters.AddWithValue(summary.End.ToString());
                await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                    if (!plan.Add(new WalSummaryRow(Oid(r.GetInt64(0)), Oid(r.GetInt64(1)), Oid(r.GetInt64(2)), r.GetInt16(3), r.GetInt64(4), r.GetBoolean(5))))
                        return (null, $"more than {WalSummaryPlan.MaxBlocks} blocks changed");
            }
            Log.Info($"WAL summaries on timeline {timeline} from {from} to {start} ({needed.Count} files) tell which blocks changed since {reference.Id}");
            return (plan.Seal(), "");
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            return (null, "this role may not read them: GRANT EXECUTE ON FUNCTION pg_available_wal_summaries(), pg_wal_summary_contents(bigint, pg_lsn, pg_lsn), " +
                "pg_get_wal_summarizer_state() to it");
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidDataException or FormatException)
        {
            return (null, Log.Redact(e.Message));
        }
    }

    /// <summary>summarize_wal, segment_size (bytes), and the timeline and redo LSN of the checkpoint pg_control names.</summary>
    private static async Task<(string Summarize, long SegmentBytes, uint Timeline, Lsn Redo)> SettingsAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("select current_setting('summarize_wal', true), current_setting('segment_size')::text, " +
            "(select timeline_id::int8 from pg_control_checkpoint()), (select redo_lsn::text from pg_control_checkpoint())", conn);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await r.ReadAsync(ct).ConfigureAwait(false);
        return (r.IsDBNull(0) ? "off" : r.GetString(0), ClusterFacts.ParseSize(r.GetString(1)), (uint)r.GetInt64(2), Lsn.Parse(r.GetString(3)));
    }

    /// <summary>Waits, bounded, for the summarizer to have summarised the WAL up to <paramref name="start"/>.</summary>
    private static async Task<bool> CaughtUpAsync(NpgsqlConnection conn, Lsn start, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            await using (var cmd = new NpgsqlCommand("select summarized_lsn::text from pg_get_wal_summarizer_state()", conn))
                if (Lsn.TryParse((string)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!, out var done) && done >= start)
                    return true;
            if (clock.Elapsed >= CatchUp) return false;
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    private static uint Oid(long value) => value is >= 0 and <= uint.MaxValue ? (uint)value : 0;
}
