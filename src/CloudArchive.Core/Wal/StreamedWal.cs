using System.Globalization;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>A stored piece of a streamed segment: bytes [Start, End) of it.</summary>
public sealed record StreamedPiece(WalFileName Segment, long Start, long End, string Key);

/// <summary>How far wal-receive's pieces reach on a timeline: the newest streamed segment, the LSN after its last stored byte, and when that was stored.</summary>
public sealed record StreamedEnd(WalFileName Segment, Lsn Reach, DateTimeOffset? StoredAt);

/// <summary>How far the stored pieces of a segment reach, contiguously from its first byte.</summary>
public sealed record StreamedSegment(WalFileName Segment, long Reach, IReadOnlyList<StreamedPiece> Chain);

/// <summary>
/// wal-receive's segment in progress, in the store. The segment is stored piece by piece as it grows (each piece a
/// conditional put of its own, under a key naming its byte range, so no upload replaces stored bytes); once whole it
/// becomes the same object wal-push writes, and its pieces are removed. wal-fetch serves a segment that has no complete
/// object from its pieces: the bytes they hold from the first on, the rest zeros, which PostgreSQL reads as the end of
/// the WAL. Every piece is checked as a WAL object is: its checksum, its size against its range, its segment size.
/// </summary>
public sealed class StreamedWal(IObjectStore store, int compressionLevel = 1)
{
    /// <summary>Stores bytes [start, start + bytes.Length) of <paramref name="segment"/>; the same bytes stored before are no conflict.</summary>
    public async Task PutPieceAsync(WalFileName segment, long segmentSize, ulong systemId, long start, ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        if (start < 0 || bytes.Length == 0 || start + bytes.Length > segmentSize)
            throw new ArgumentOutOfRangeException(nameof(start), $"piece [{start}, {start + bytes.Length}) of a {segmentSize}-byte segment");
        var key = StoreLayout.StreamedPieceKey(segment, start, start + bytes.Length);
        using var compressed = new MemoryStream();
        var digest = await ZstdPipeline.CompressAsync(new ReadOnlyMemoryStream(bytes), compressed, compressionLevel, ct, bytes.Length).ConfigureAwait(false);
        compressed.Position = 0;
        var metadata = new ObjectMetadata
        {
            [ObjectMetadata.Compression] = ZstdPipeline.Compression,
            [ObjectMetadata.Sha256] = digest.Sha256,
            [ObjectMetadata.Size] = bytes.Length.ToString(CultureInfo.InvariantCulture),
            [ObjectMetadata.SegmentSize] = segmentSize.ToString(CultureInfo.InvariantCulture),
            [ObjectMetadata.SystemId] = systemId.ToString(CultureInfo.InvariantCulture),
            [StreamedAt] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
        if (await store.PutIfAbsentAsync(key, compressed, metadata, ct).ConfigureAwait(false) is PutOutcome.AlreadyExists exists
            && exists.Existing.Metadata.Get(ObjectMetadata.Sha256) != digest.Sha256)
            throw new CloudArchiveException(ExitCode.RefusedOverwrite, $"{key} in {store.Description} holds other bytes than the server streamed for " +
                $"that range (another receiver on another history?): refusing to replace it");
    }

    /// <summary>Metadata of a piece: when it was stored (for status: how far behind the receiver is).</summary>
    public const string StreamedAt = "streamedat";

    /// <summary>
    /// The newest streamed segment of each timeline (or of <paramref name="timeline"/>) and how far it reaches; its time
    /// from its last piece's metadata (null when it does not parse). Only for reports: the LSN is not trusted for recovery,
    /// which reads the pieces themselves.
    /// </summary>
    public async Task<List<StreamedEnd>> EndsAsync(uint? timeline, CancellationToken ct)
    {
        var ends = new List<StreamedEnd>();
        foreach (var newest in (await ListAsync(timeline, ct).ConfigureAwait(false)).Where(s => s.Reach > 0).GroupBy(s => s.Segment.Timeline)
            .Select(g => g.MaxBy(s => s.Segment.Name, StringComparer.Ordinal)!))
        {
            var info = await store.GetInfoAsync(newest.Chain[^1].Key, ct).ConfigureAwait(false);
            if (info is null || !long.TryParse(info.Metadata.Get(ObjectMetadata.SegmentSize), NumberStyles.None, CultureInfo.InvariantCulture, out var size)
                || !WalFileName.IsValidSegmentSize(size) || newest.Reach > size)
                continue;
            DateTimeOffset? at = DateTimeOffset.TryParse(info.Metadata.Get(StreamedAt), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : null;
            ends.Add(new StreamedEnd(newest.Segment, new Lsn(newest.Segment.StartLsn(size).Value + (ulong)newest.Reach), at));
        }
        return ends;
    }

    /// <summary>The stored pieces of <paramref name="segment"/>, and how far they reach from its first byte.</summary>
    public async Task<StreamedSegment> ReadAsync(WalFileName segment, CancellationToken ct)
    {
        var pieces = new List<StreamedPiece>();
        await foreach (var item in store.ListAsync(StoreLayout.StreamedSegmentPrefix(segment), ct).ConfigureAwait(false))
            if (StoreLayout.StreamedPieceFromKey(item.Key) is { } p && p.Segment == segment)
                pieces.Add(new StreamedPiece(p.Segment, p.Start, p.End, item.Key));
        return Chain(segment, pieces);
    }

    /// <summary>Every segment with stored pieces (on <paramref name="timeline"/>, or on all), with how far each reaches.</summary>
    public async Task<List<StreamedSegment>> ListAsync(uint? timeline, CancellationToken ct)
    {
        var prefix = timeline is { } t ? $"{StoreLayout.WalStreamPrefix}{t:X8}/" : StoreLayout.WalStreamPrefix;
        var pieces = new List<StreamedPiece>();
        await foreach (var item in store.ListAsync(prefix, ct).ConfigureAwait(false))
            if (StoreLayout.StreamedPieceFromKey(item.Key) is { } p)
                pieces.Add(new StreamedPiece(p.Segment, p.Start, p.End, item.Key));
        return pieces.GroupBy(p => p.Segment).Select(g => Chain(g.Key, g)).OrderBy(s => s.Segment.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The pieces that reach furthest from byte 0 without a hole: at each end, the piece starting there that ends last.
    /// Pieces of two receivers (or of one restarted) may overlap; they hold the same WAL, and only one chain is read.
    /// </summary>
    public static StreamedSegment Chain(WalFileName segment, IEnumerable<StreamedPiece> pieces)
    {
        var byStart = pieces.GroupBy(p => p.Start).ToDictionary(g => g.Key, g => g.MaxBy(p => p.End)!);
        var chain = new List<StreamedPiece>();
        long reach = 0;
        while (byStart.TryGetValue(reach, out var next))
        {
            chain.Add(next);
            reach = next.End;
        }
        return new StreamedSegment(segment, reach, chain);
    }

    /// <summary>
    /// Writes the streamed bytes of <paramref name="segment"/> to <paramref name="file"/> (created), zero-padded to the
    /// segment size; returns the bytes that are WAL, 0 when no piece starts at its first byte (nothing written then).
    /// </summary>
    /// <param name="segmentSize">The cluster's segment size when known: pieces recording another are refused.</param>
    public async Task<(long Reach, long SegmentSize)> WriteAsync(WalFileName segment, string file, long? segmentSize, CancellationToken ct)
    {
        var streamed = await ReadAsync(segment, ct).ConfigureAwait(false);
        if (streamed.Reach == 0) return (0, 0);
        long size = 0;
        await using var output = new FileStream(file, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        foreach (var piece in streamed.Chain)
            size = await ReadPieceAsync(piece, size != 0 ? size : segmentSize, output, ct).ConfigureAwait(false);
        // The rest of the segment reads as zeros: an invalid record there is where PostgreSQL's replay of it ends.
        output.SetLength(size);
        return (streamed.Reach, size);
    }

    /// <summary>
    /// One piece decoded into <paramref name="output"/> and checked as a WAL object is (its checksum, its size against its
    /// range, its segment size: <paramref name="segmentSize"/> when known); returns the segment size it records.
    /// </summary>
    public async Task<long> ReadPieceAsync(StreamedPiece piece, long? segmentSize, Stream output, CancellationToken ct)
    {
        await using var obj = await store.OpenReadAsync(piece.Key, ct).ConfigureAwait(false)
            ?? throw new CorruptObjectException($"{piece.Key} was listed in {store.Description} but is gone: a streamed piece removed while it was read");
        var what = $"{piece.Key} in {store.Description}";
        var recordedSegment = obj.Info.Metadata.Get(ObjectMetadata.SegmentSize);
        if (!long.TryParse(recordedSegment, NumberStyles.None, CultureInfo.InvariantCulture, out var pieceSegment)
            || !WalFileName.IsValidSegmentSize(pieceSegment) || (segmentSize is { } own && own != pieceSegment) || piece.End > pieceSegment)
            throw new CorruptObjectException($"{what} is corrupt or of another cluster: it records segment size '{recordedSegment}'");
        var length = piece.End - piece.Start;
        if (obj.Info.Metadata.Get(ObjectMetadata.Size) != length.ToString(CultureInfo.InvariantCulture))
            throw new CorruptObjectException($"{what} is corrupt: it records {obj.Info.Metadata.Get(ObjectMetadata.Size)} bytes, but its name says {length}");
        var digest = await ZstdPipeline.DecompressAsync(obj.Content, output, what, length, ct).ConfigureAwait(false);
        if (digest.Length != length)
            throw new CorruptObjectException($"{what} is corrupt: it decodes to {digest.Length} bytes, recorded {length}");
        if (!obj.Authenticated && digest.Sha256 != obj.Info.Metadata.Get(ObjectMetadata.Sha256))
            throw new CorruptObjectException($"{what} is corrupt: SHA-256 of its content is {digest.Sha256}, recorded " +
                $"{obj.Info.Metadata.Get(ObjectMetadata.Sha256)}");
        return pieceSegment;
    }

    /// <summary>Removes the pieces of <paramref name="segment"/> (once its complete object is stored).</summary>
    public async Task<int> RemoveAsync(WalFileName segment, CancellationToken ct)
    {
        var keys = new List<string>();
        await foreach (var item in store.ListAsync(StoreLayout.StreamedSegmentPrefix(segment), ct).ConfigureAwait(false))
            if (StoreLayout.StreamedPieceFromKey(item.Key) is { } p && p.Segment == segment) keys.Add(item.Key);
        var removed = 0;
        foreach (var key in keys)
        {
            try
            {
                await store.DeleteAsync(key, ct).ConfigureAwait(false);
                removed++;
            }
            catch (ObjectLockedException)
            {
                // A locked store (--lock-days): the pieces stay until their date; expire removes them then (the segment is whole).
            }
        }
        return removed;
    }

    /// <summary>A read-only stream over a block of memory.</summary>
    private sealed class ReadOnlyMemoryStream(ReadOnlyMemory<byte> bytes) : Stream
    {
        private int _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => bytes.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(buffer.Length, bytes.Length - _position);
            bytes.Span.Slice(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
