using System.Globalization;
using System.Text;
using CloudArchive.Core;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;
using Npgsql;
using Npgsql.Replication;
using NpgsqlTypes;

namespace CloudArchive.Postgres;

/// <summary>What wal-receive is told.</summary>
public sealed record WalReceiverOptions
{
    /// <summary>--dbname: the server to stream from (a name, conninfo or URI; libpq's environment completes it).</summary>
    public string? DbName { get; init; }
    /// <summary>--slot: the physical replication slot that keeps the server's WAL until it is in the store.</summary>
    public string Slot { get; init; } = "cloudarchive";
    /// <summary>--create-slot: create the slot when it does not exist.</summary>
    public bool CreateSlot { get; init; }
    /// <summary>--synchronous: store what arrives at once and report each stored byte at once.</summary>
    public bool Synchronous { get; init; }
    /// <summary>--application-name: the name synchronous_standby_names lists.</summary>
    public string ApplicationName { get; init; } = "cloudarchive";
    /// <summary>--flush-interval: the longest an asynchronous receiver holds received bytes before storing them.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>--flush-size: received bytes that are stored at once, whatever the interval.</summary>
    public long FlushBytes { get; init; } = 4 << 20;
    /// <summary>Where the segments in progress are written locally (private to this process; lost on a crash, streamed again).</summary>
    public required string SpoolDirectory { get; init; }
    /// <summary>--pg-bin: where psql is (it reads a timeline's history where this Npgsql cannot).</summary>
    public string? PgBin { get; init; }
    /// <summary>zstd level of whole segments (pieces use 1).</summary>
    public int CompressionLevel { get; init; } = 3;
}

/// <summary>
/// wal-receive: streams WAL from a server's physical replication slot into the store as it is written. The segment in
/// progress is stored piece by piece (<see cref="StreamedWal"/>); a whole segment becomes the object wal-push writes,
/// through the same code, so the receiver and archive_command each find the other's segments already archived. The flush
/// position reported to the server (and so the slot's restart point, and a synchronous commit's wait) is only ever what
/// is durably in the store; the apply position is never reported (it applies nothing), so remote_apply is never
/// satisfied by it. Any failure (the server gone, the store down, a timeline that ended) ends the session: what was
/// received is stored if the store allows, and the next session resumes from what the store holds.
/// </summary>
public sealed class WalReceiver(Func<ulong, IObjectStore> storeFor, WalReceiverOptions options)
{
    /// <summary>Segments received ahead of the store before streaming waits (the server keeps them meanwhile).</summary>
    private const int MaxSegmentsAhead = 4;

    /// <summary>The furthest LSN stored by this process, for the last line.</summary>
    public Lsn? Stored { get; private set; }

    /// <summary>Called with each session's facts (system, timeline, start) and each stored whole segment, for the terminal and the log.</summary>
    public Action<string>? Say { get; init; }

    /// <summary>Streams until <paramref name="stop"/>; a failure that a new session cannot mend is thrown.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var progressed = await SessionAsync(stop).ConfigureAwait(false);
                if (progressed) delay = TimeSpan.FromSeconds(1);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (Transient(e))
            {
                Log.Warn($"wal-receive: {Describe(e)}; starting again in {delay.TotalSeconds:0} s from what the store holds");
            }
            try
            {
                await Task.Delay(delay, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            delay = TimeSpan.FromSeconds(Math.Min(30, delay.TotalSeconds * 2));
        }
    }

    /// <summary>What a new session may mend: the server or the network gone, the store unavailable, a timeline ended.</summary>
    private static bool Transient(Exception e) => e switch
    {
        TimelineEnded => true,
        StoreUnavailableException s => s.Outage,
        PostgresException p => p.SqlState.StartsWith("57", StringComparison.Ordinal) || p.SqlState.StartsWith("08", StringComparison.Ordinal)
            || p.SqlState.StartsWith("53", StringComparison.Ordinal),
        NpgsqlException => true,
        IOException or TimeoutException or System.Net.Sockets.SocketException => true,
        _ => false,
    };

    private static string Describe(Exception e) => e switch
    {
        PostgresException p => $"the server said: {p.MessageText} ({p.SqlState})",
        NpgsqlException n => $"the connection failed: {n.Message}{(n.InnerException is { } i ? $" ({i.Message})" : "")}",
        _ => e.Message,
    };

    /// <summary>The stream ended because the timeline streamed was a historic one that ends here (a promotion).</summary>
    private sealed class TimelineEnded(string message, Exception inner) : Exception(message, inner);

    /// <summary>One connection: identify, resume, stream, store. True when anything was stored.</summary>
    private async Task<bool> SessionAsync(CancellationToken stop)
    {
        var settings = PgConnectionInfo.Settings(options.DbName);
        settings.ApplicationName = options.ApplicationName;
        settings.CommandTimeout = 30;
        await using var conn = new PhysicalReplicationConnection(settings.ConnectionString)
        {
            // Tells the server what is stored at least this often; a synchronous receiver also tells it after every store.
            WalReceiverStatusInterval = TimeSpan.FromSeconds(options.Synchronous ? 1 : 10),
            WalReceiverTimeout = TimeSpan.FromSeconds(60),
        };
        await conn.Open(stop).ConfigureAwait(false);
        var system = await conn.IdentifySystem(stop).ConfigureAwait(false);
        if (!ulong.TryParse(system.SystemId, NumberStyles.None, CultureInfo.InvariantCulture, out var systemId))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"the server's system identifier '{system.SystemId}' is not a number");
        var segmentSize = SegmentSize(await conn.Show("wal_segment_size", stop).ConfigureAwait(false));
        var store = storeFor(systemId);
        var archive = new WalArchive(store, options.CompressionLevel, zstdWorkers: 1);
        var streamed = new StreamedWal(store);

        // The timelines before the server's: their history files go to the store as archive_command would send them.
        var history = new List<TimelineSwitch>();
        for (var tli = 2u; tli <= system.Timeline; tli++)
        {
            var (fileName, content) = await TimelineHistoryAsync(conn, tli, stop).ConfigureAwait(false);
            var path = Path.Combine(options.SpoolDirectory, fileName);
            if (!WalFileName.TryParse(fileName, out var name) || name.Kind != WalFileKind.History || name.Timeline != tli)
                throw new CloudArchiveException(ExitCode.InvalidInput, $"the server sent timeline history '{fileName}' for timeline {tli}");
            await File.WriteAllBytesAsync(path, content, stop).ConfigureAwait(false);
            await archive.PushAsync(path, stop).ConfigureAwait(false);
            File.Delete(path);
            if (tli == system.Timeline) history = TimelineHistory.Parse(Encoding.UTF8.GetString(content));
        }

        var slot = await SlotAsync(conn, stop).ConfigureAwait(false);
        var serverEnd = new Lsn((ulong)system.XLogPos);
        var whole = await archive.ListNamesAsync(stop).ConfigureAwait(false);
        var pieces = await streamed.ListAsync(null, stop).ConfigureAwait(false);
        var storedEnd = ReceiveStart.StoredEnd(history, system.Timeline, whole, pieces, segmentSize);
        // Resumed where the store ends; a store without this history starts at the slot's position, or the server's end.
        var start = storedEnd ?? (slot?.RestartLsn is { } restart ? new Lsn((ulong)restart) : serverEnd);
        if (start > serverEnd)
        {
            Log.Warn($"wal-receive: the store holds WAL up to {start}, past the server's {serverEnd} on its history: starting at the server's end");
            start = serverEnd;
        }
        var from = ReceiveStart.SegmentStart(start, segmentSize);
        var timeline = ReceiveStart.TimelineOf(start, history, system.Timeline);
        var first = WalFileName.ForSegment(timeline, from.Value / (ulong)segmentSize, segmentSize);
        var already = pieces.FirstOrDefault(p => p.Segment == first)?.Reach ?? 0;
        Say?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"wal-receive: system {systemId}, timeline {system.Timeline}, server at {serverEnd}; the store holds up to {(storedEnd is { } s ? s.ToString() : "nothing of it")}; " +
                $"streaming timeline {timeline} from {from} (segment {first.Name}) on slot {options.Slot}{(options.Synchronous ? ", synchronous" : "")}"));

        var session = new Session(archive, streamed, options, segmentSize, systemId, timeline, from, already, conn);
        try
        {
            await session.RunAsync(new PhysicalReplicationSlot(options.Slot), stop).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == "58P01" && storedEnd is { } hole)
        {
            // The server no longer has the WAL after what the store holds: a gap that only another copy can fill.
            Log.Error($"wal-receive: the archive has a gap after {hole}: the server no longer has that WAL ({e.MessageText}); archive it from " +
                $"elsewhere (pg_wal of another node) or take a new base backup; streaming from the slot's position");
            throw new CloudArchiveException(ExitCode.Corrupt, $"the archive has a gap after {hole} that the server cannot fill", e);
        }
        finally
        {
            if (session.StoredLsn is { } done && (Stored is not { } before || done > before)) Stored = done;
        }
        return session.StoredAnything;
    }

    /// <summary>
    /// TIMELINE_HISTORY: through Npgsql where the server sends the content as bytea; PostgreSQL 15 and later send it as
    /// text, which this Npgsql cannot cast, so psql asks (a replication connection, the password in its environment only).
    /// </summary>
    private async Task<(string FileName, byte[] Content)> TimelineHistoryAsync(PhysicalReplicationConnection conn, uint tli, CancellationToken ct)
    {
        try
        {
            var file = await conn.TimelineHistory(tli, ct).ConfigureAwait(false);
            return (file.FileName, file.Content);
        }
        catch (InvalidCastException)
        {
            var psql = await PgProgram.FindAsync(ClientNeed.Any("psql"), options.PgBin, ct).ConfigureAwait(false);
            var child = LibpqSettings.ForChild(options.DbName);
            var conninfo = child.Kind switch
            {
                ChildConnection.Form.Uri => child.DbName + (child.DbName!.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "replication=true",
                ChildConnection.Form.Defaults => "replication=true",
                _ => child.ConnectionString + " replication=true",
            };
            var env = new Dictionary<string, string>(child.Environment()) { ["PGAPPNAME"] = options.ApplicationName };
            var csv = await PgProgram.RunAsync(psql.Path, ["-X", "-q", "--csv", "-t", "-d", conninfo, "-c", $"TIMELINE_HISTORY {tli}"], ct, env)
                .ConfigureAwait(false);
            return ParseHistoryRow(csv, tli);
        }
    }

    /// <summary>psql's CSV row of TIMELINE_HISTORY: the file name, then its content (quoted, "" for a quote).</summary>
    public static (string FileName, byte[] Content) ParseHistoryRow(string csv, uint tli)
    {
        var comma = csv.IndexOf(',', StringComparison.Ordinal);
        var rest = comma < 0 ? "" : csv[(comma + 1)..].TrimEnd('\n', '\r');
        string content;
        if (rest.Length >= 2 && rest[0] == '"' && rest[^1] == '"') content = rest[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal);
        else content = rest;
        if (comma <= 0 || content.Length == 0)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"the server's history of timeline {tli} does not parse");
        return (csv[..comma], Encoding.UTF8.GetBytes(content));
    }

    /// <summary>The slot, created when asked and missing; null where the server cannot say (PostgreSQL 14 and older).</summary>
    private async Task<PhysicalReplicationSlot?> SlotAsync(PhysicalReplicationConnection conn, CancellationToken ct)
    {
        if (conn.PostgreSqlVersion.Major < 15)
        {
            if (options.CreateSlot)
                try
                {
                    await conn.CreateReplicationSlot(options.Slot, isTemporary: false, reserveWal: true, ct).ConfigureAwait(false);
                    Log.Notice($"wal-receive: created physical replication slot {options.Slot}");
                }
                catch (PostgresException e) when (e.SqlState == "42710")
                {
                    // It exists: nothing to create.
                }
            return null;
        }
        var slot = await conn.ReadReplicationSlot(options.Slot, ct).ConfigureAwait(false);
        if (slot is not null) return slot;
        if (!options.CreateSlot)
            throw new CloudArchiveException(ExitCode.Usage, $"the server has no replication slot '{options.Slot}': create it with --create-slot (or " +
                $"SELECT pg_create_physical_replication_slot('{options.Slot}', true)), so that the server keeps its WAL until it is stored");
        await conn.CreateReplicationSlot(options.Slot, isTemporary: false, reserveWal: true, ct).ConfigureAwait(false);
        Log.Notice($"wal-receive: created physical replication slot {options.Slot}");
        return await conn.ReadReplicationSlot(options.Slot, ct).ConfigureAwait(false);
    }

    /// <summary>A name PostgreSQL takes for a replication slot: lower-case letters, digits and underscores, at most 63.</summary>
    public static bool IsValidSlotName(string name) =>
        name.Length is > 0 and <= 63 && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');

    /// <summary>wal_segment_size as SHOW gives it ("16MB", "1GB").</summary>
    public static long SegmentSize(string shown)
    {
        var unit = shown.TrimStart("0123456789".ToCharArray());
        var number = shown[..^unit.Length];
        long multiplier = unit switch { "kB" => 1 << 10, "MB" => 1 << 20, "GB" => 1 << 30, "" or "B" => 1, _ => 0 };
        if (multiplier == 0 || !long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || !WalFileName.IsValidSegmentSize(n * multiplier))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"the server's wal_segment_size '{shown}' is not a WAL segment size");
        return n * multiplier;
    }

    /// <summary>A segment being received: its local file, how much of it arrived, how much of it is stored.</summary>
    private sealed class Receiving(WalFileName name, Lsn start, string path, long stored)
    {
        public WalFileName Name { get; } = name;
        public Lsn Start { get; } = start;
        public string Path { get; } = path;
        public long Received;
        public long Stored = stored;
        public readonly FileStream File = new(path, new FileStreamOptions
        {
            Mode = FileMode.Create, Access = FileAccess.ReadWrite, Share = FileShare.Read,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
    }

    /// <summary>One START_REPLICATION: a reader writing what arrives into local segment files, a writer storing it.</summary>
    private sealed class Session(WalArchive archive, StreamedWal streamed, WalReceiverOptions options, long segmentSize, ulong systemId, uint timeline,
        Lsn from, long alreadyStored, PhysicalReplicationConnection conn)
    {
        private readonly Queue<Receiving> _segments = new();
        private readonly Lock _lock = new();
        private readonly SemaphoreSlim _arrived = new(0);
        private readonly SemaphoreSlim _storedOne = new(0);
        private volatile bool _readerDone;

        public Lsn? StoredLsn { get; private set; }
        public bool StoredAnything { get; private set; }

        public async Task RunAsync(PhysicalReplicationSlot slot, CancellationToken stop)
        {
            using var readStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
            // The writer is not stopped with the stream: what arrived is stored first.
            var writer = Task.Run(() => WriteAsync(CancellationToken.None), CancellationToken.None);
            // A store that fails past its retry budget ends the stream: nothing more is received than can be stored.
            _ = writer.ContinueWith(_ =>
            {
                try { readStop.Cancel(); } catch (ObjectDisposedException) { }
            }, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            Exception? readFailure = null;
            try
            {
                await ReadAsync(slot, writer, readStop.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                readFailure = e;
            }
            _readerDone = true;
            _arrived.Release();
            try
            {
                // What arrived is stored before the session ends, whatever ended it (a stop included); a store that stays
                // down past the retry budget ends it too, and the next session streams it again.
                await writer.ConfigureAwait(false);
            }
            finally
            {
                lock (_lock)
                    while (_segments.TryDequeue(out var s)) Discard(s);
            }
            if (readFailure is not null and not OperationCanceledException) throw readFailure;
            if (readFailure is OperationCanceledException && !stop.IsCancellationRequested) throw readFailure;
        }

        private async Task ReadAsync(PhysicalReplicationSlot slot, Task writer, CancellationToken ct)
        {
            var expected = from;
            var buffer = new byte[1 << 20];
            try
            {
                await foreach (var message in conn.StartReplication(slot, new NpgsqlLogSequenceNumber(from.Value), ct, timeline).ConfigureAwait(false))
                {
                    var position = (ulong)message.WalStart;
                    var length = message.Data.Length;
                    if (position != expected.Value)
                        throw new IOException($"the server sent WAL from {new Lsn(position)}, expected {expected}");
                    long done = 0;
                    while (done < length)
                    {
                        var n = await message.Data.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - done)), ct).ConfigureAwait(false);
                        if (n == 0) throw new IOException("the server's WAL message ended early");
                        await AppendAsync(new Lsn(position + (ulong)done), buffer.AsMemory(0, n), writer, ct).ConfigureAwait(false);
                        done += n;
                    }
                    expected = new Lsn(position + (ulong)length);
                    _arrived.Release();
                }
            }
            catch (NpgsqlException e) when (e.Message.Contains("while expecting CopyData", StringComparison.Ordinal))
            {
                // PostgreSQL ends a historic timeline with CopyDone, and a stream at shut-down with CommandComplete, which this
                // Npgsql takes for a broken protocol: the stream ended, and the next session asks the server where to go on.
                throw new TimelineEnded($"the server ended the stream of timeline {timeline} at {expected} (a shut-down, or the end of a timeline it " +
                    $"was promoted past)", e);
            }
        }

        private async Task AppendAsync(Lsn at, ReadOnlyMemory<byte> bytes, Task writer, CancellationToken ct)
        {
            while (!bytes.IsEmpty)
            {
                Receiving current;
                lock (_lock) current = _segments.Count > 0 ? _segments.Last() : null!;
                var offset = current is null ? -1 : (long)(at.Value - current.Start.Value);
                if (current is null || offset >= segmentSize)
                {
                    // Streaming waits while the store is far behind: the server keeps the WAL for the slot meanwhile.
                    while (true)
                    {
                        lock (_lock) if (_segments.Count < MaxSegmentsAhead) break;
                        if (writer.IsCompleted) throw new IOException("the store writer stopped");
                        await _storedOne.WaitAsync(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                    }
                    var start = ReceiveStart.SegmentStart(at, segmentSize);
                    var name = WalFileName.ForSegment(timeline, start.Value / (ulong)segmentSize, segmentSize);
                    current = new Receiving(name, start, Path.Combine(options.SpoolDirectory, name.Name + ".receiving"), start == from ? alreadyStored : 0);
                    lock (_lock) _segments.Enqueue(current);
                    offset = (long)(at.Value - start.Value);
                }
                var n = (int)Math.Min(bytes.Length, segmentSize - offset);
                await RandomAccess.WriteAsync(current.File.SafeFileHandle, bytes[..n], offset, ct).ConfigureAwait(false);
                lock (_lock) current.Received = offset + n;
                bytes = bytes[n..];
                at = new Lsn(at.Value + (ulong)n);
            }
        }

        /// <summary>Stores what arrived: at once when synchronous, else every flush interval or flush size; whole segments as wal-push does.</summary>
        private async Task WriteAsync(CancellationToken ct)
        {
            var lastStore = DateTime.UtcNow;
            while (true)
            {
                Receiving? head;
                long pending;
                lock (_lock)
                {
                    head = _segments.Count > 0 ? _segments.Peek() : null;
                    pending = _segments.Sum(s => s.Received - Math.Min(s.Stored, s.Received));
                }
                var whole = head is not null && head.Received == segmentSize;
                var due = whole || (pending > 0 && (options.Synchronous || _readerDone || pending >= options.FlushBytes
                    || DateTime.UtcNow - lastStore >= options.FlushInterval));
                if (!due)
                {
                    if (_readerDone) return;
                    var wait = options.Synchronous || pending == 0 ? TimeSpan.FromSeconds(1) : options.FlushInterval - (DateTime.UtcNow - lastStore);
                    await _arrived.WaitAsync(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, ct).ConfigureAwait(false);
                    continue;
                }
                if (whole) await StoreWholeAsync(head!, ct).ConfigureAwait(false);
                else await StorePieceAsync(head!, ct).ConfigureAwait(false);
                lastStore = DateTime.UtcNow;
                StoredAnything = true;
                Lsn flushed;
                lock (_lock)
                    flushed = _segments.Count > 0 ? new Lsn(_segments.Peek().Start.Value + (ulong)_segments.Peek().Stored) : StoredLsn!.Value;
                StoredLsn = flushed;
                conn.LastFlushedLsn = new NpgsqlLogSequenceNumber(flushed.Value);
                if (options.Synchronous && !_readerDone)
                    try
                    {
                        await conn.SendStatusUpdate(ct).ConfigureAwait(false);
                    }
                    catch (InvalidOperationException)
                    {
                        // The stream ended meanwhile: the next session reports from the store.
                    }
            }
        }

        private async Task StorePieceAsync(Receiving segment, CancellationToken ct)
        {
            long start, end;
            lock (_lock) (start, end) = (segment.Stored, segment.Received);
            if (end <= start)
            {
                // Only bytes the store already holds arrived (a restart re-streams its segment from the start).
                return;
            }
            var bytes = new byte[end - start];
            await RandomAccess.ReadAsync(segment.File.SafeFileHandle, bytes, start, ct).ConfigureAwait(false);
            await streamed.PutPieceAsync(segment.Name, segmentSize, systemId, start, bytes, ct).ConfigureAwait(false);
            lock (_lock) segment.Stored = end;
            Log.Debug($"wal-receive: stored {segment.Name} bytes {start}-{end}");
        }

        private async Task StoreWholeAsync(Receiving segment, CancellationToken ct)
        {
            await segment.File.FlushAsync(ct).ConfigureAwait(false);
            var path = Path.Combine(options.SpoolDirectory, segment.Name.Name);
            File.Copy(segment.Path, path, overwrite: true);
            try
            {
                var result = await archive.PushAsync(path, ct).ConfigureAwait(false);
                var removed = await streamed.RemoveAsync(segment.Name, ct).ConfigureAwait(false);
                var line = $"stored {segment.Name.Name}{(result.AlreadyArchived ? " (already archived: the same bytes)" : "")}, " +
                    string.Create(CultureInfo.InvariantCulture, $"{result.StoredSize / 1048576.0:0.0} MiB stored; removed its {removed} streamed pieces");
                Log.Info(line);
            }
            finally
            {
                File.Delete(path);
            }
            lock (_lock)
            {
                segment.Stored = segmentSize;
                StoredLsn = new Lsn(segment.Start.Value + (ulong)segmentSize);
                _segments.Dequeue();
            }
            Discard(segment);
            _storedOne.Release();
        }

        private static void Discard(Receiving segment)
        {
            segment.File.Dispose();
            File.Delete(segment.Path);
        }
    }
}
