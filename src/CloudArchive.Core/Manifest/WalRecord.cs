using System.Text.Json.Serialization;

namespace CloudArchive.Core.Manifest;

/// <summary>The manifest's entry for one archived WAL file, written once, after the object is durable.</summary>
public sealed record WalRecord
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    public required uint Timeline { get; init; }
    public required string Key { get; init; }
    /// <summary>First LSN the segment covers; null for .history files.</summary>
    public string? StartLsn { get; init; }
    /// <summary>The LSN just past the segment; null for .history files.</summary>
    public string? EndLsn { get; init; }
    public long? SegmentSize { get; init; }
    public string? SystemIdentifier { get; init; }
    public required long Size { get; init; }
    public required long StoredSize { get; init; }
    public required string Sha256 { get; init; }
    public required string Compression { get; init; }
    public required DateTimeOffset ArchivedAt { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WalRecord))]
[JsonSerializable(typeof(Backup.BackupRecord))]
[JsonSerializable(typeof(Dump.DumpRecord))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class ManifestJson : JsonSerializerContext;
