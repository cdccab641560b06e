using System.Text.Json.Serialization;

namespace CloudArchive.Core.Manifest;

/// <summary>
/// The manifest's entry for one archived WAL file (a segment, .partial, .history or .backup file; not what PostgreSQL
/// calls a WAL record), written once, after the object is durable.
/// </summary>
public sealed record WalFileRecord
{
    /// <summary>The WAL file name (%f).</summary>
    public required string Name { get; init; }
    /// <summary>What the file is: a <see cref="Wal.WalFileKind"/> name.</summary>
    public required string Kind { get; init; }
    /// <summary>The timeline in the name.</summary>
    public required uint Timeline { get; init; }
    /// <summary>The key of the compressed object.</summary>
    public required string Key { get; init; }
    /// <summary>First LSN the segment covers; null for .history files.</summary>
    public string? StartLsn { get; init; }
    /// <summary>The LSN just past the segment; null for .history files.</summary>
    public string? EndLsn { get; init; }
    /// <summary>wal_segment_size read from the segment header; null for .history files.</summary>
    public long? SegmentSize { get; init; }
    /// <summary>The database system identifier read from the segment header; null for .history files.</summary>
    public string? SystemIdentifier { get; init; }
    /// <summary>Bytes of the file (uncompressed).</summary>
    public required long Size { get; init; }
    /// <summary>Bytes stored (compressed).</summary>
    public required long StoredSize { get; init; }
    /// <summary>SHA-256 of the uncompressed file, hex.</summary>
    public required string Sha256 { get; init; }
    /// <summary>The object's compression (zstd).</summary>
    public required string Compression { get; init; }
    /// <summary>When the record was written.</summary>
    public required DateTimeOffset ArchivedAt { get; init; }

    /// <summary>The host that pushed it (its name): with standbys archiving too, which node did. Null in older records.</summary>
    public string? PushedBy { get; init; }
}
