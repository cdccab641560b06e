using System.Buffers.Binary;

namespace CloudArchive.Core.Wal;

/// <summary>
/// What wal-fetch needs to know of the cluster in recovery, from its <c>global/pg_control</c>: the database system
/// identifier (the file's first 8 bytes) and the WAL segment size. The size is found after the float-format
/// marker (1234567.0), which every release since 8.x writes before blcksz, relseg_size, xlog_blcksz and
/// xlog_seg_size; searching for it keeps this independent of the fields before it, which change between releases.
/// </summary>
public sealed record ControlFile(ulong SystemIdentifier, long? SegmentSize)
{
    /// <summary>The primary's settings that recovery needs at least as high (null when they cannot be read with confidence).</summary>
    public ServerLimits? Limits { get; init; }

    /// <summary>The data directory it was read from (null when parsed from bytes).</summary>
    public string? DataDirectory { get; init; }

    private const double FloatFormat = 1234567.0;

    /// <summary>The control file of <paramref name="dataDirectory"/>; null when it is missing or unreadable.</summary>
    public static ControlFile? TryRead(string dataDirectory)
    {
        try
        {
            using var f = File.OpenRead(Path.Combine(dataDirectory, "global", "pg_control"));
            var bytes = new byte[1024];
            var n = f.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            return Parse(bytes.AsSpan(0, n)) is { } control ? control with { DataDirectory = dataDirectory } : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Reads the system identifier and segment size from pg_control's bytes; null when they are too short.</summary>
    public static ControlFile? Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 8) return null;
        var system = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        for (var at = 8; at + 24 <= bytes.Length; at += 8)
        {
            if (BinaryPrimitives.ReadDoubleLittleEndian(bytes[at..]) != FloatFormat) continue;
            var segmentSize = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(at + 20)..]);
            return new ControlFile(system, WalFileName.IsValidSegmentSize(segmentSize) ? segmentSize : null) { Limits = ServerLimits.Before(bytes, at) };
        }
        return new ControlFile(system, null);
    }
}

/// <summary>
/// What pg_control records of the primary's settings that a server in recovery needs at least as high (hot standby
/// refuses lower ones): read from the control file, never from the backup's configuration files.
/// </summary>
/// <param name="WalLevel">0 minimal, 1 replica, 2 logical.</param>
/// <param name="MaxConnections">max_connections.</param>
/// <param name="MaxWorkerProcesses">max_worker_processes.</param>
/// <param name="MaxWalSenders">max_wal_senders.</param>
/// <param name="MaxPreparedTransactions">max_prepared_transactions.</param>
/// <param name="MaxLocksPerTransaction">max_locks_per_transaction.</param>
public sealed record ServerLimits(int WalLevel, int MaxConnections, int MaxWorkerProcesses, int MaxWalSenders, int MaxPreparedTransactions,
    int MaxLocksPerTransaction)
{
    /// <summary>
    /// From 12 to 18 ControlFileData ends its settings with wal_level, wal_log_hints, MaxConnections,
    /// max_worker_processes, max_wal_senders, max_prepared_xacts, max_locks_per_xact, track_commit_timestamp and
    /// maxAlign, right before the float marker at <paramref name="marker"/>: maxAlign (8 or 4) must be where it is
    /// expected and every value in PostgreSQL's own range, else null.
    /// </summary>
    internal static ServerLimits? Before(ReadOnlySpan<byte> bytes, int marker)
    {
        if (marker < 40) return null;
        Span<int> at = stackalloc int[10];
        for (var i = 1; i < at.Length; i++) at[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(marker - 4 * i)..]);
        if (at[1] is not (8 or 4)) return null;
        var limits = new ServerLimits(at[9], at[7], at[6], at[5], at[4], at[3]);
        return limits is { WalLevel: >= 0 and <= 2, MaxConnections: >= 1 and <= 262143, MaxWorkerProcesses: >= 0 and <= 262143,
            MaxWalSenders: >= 0 and <= 262143, MaxPreparedTransactions: >= 0 and <= 262143, MaxLocksPerTransaction: >= 10 and <= 2147483647 }
            ? limits : null;
    }
}
