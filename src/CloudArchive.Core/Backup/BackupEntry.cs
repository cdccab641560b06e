using System.Text.Json.Serialization;

namespace CloudArchive.Core.Backup;

/// <summary>
/// A directory (Sha256 null) or a file of the data directory or of a tablespace (path under pg_tblspc/OID/). For a file,
/// Sha256 is the SHA-256 of what this backup stored of it: its content, or for a relation file of an incremental the
/// blocks it stored, one after another (of nothing, when it stored none).
/// </summary>
public sealed record BackupEntry(string Path, int Bundle, long Size, string? Sha256, int Mode)
{
    /// <summary>Backed up block by block: the hashes of the blocks stored are in its bundle's map object.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Blocks { get; init; }

    /// <summary>For a relation file, the SHA-256 of its slice of the bundle's map object (stored as "map").</summary>
    [JsonPropertyName("map")]
    public string? MapSha256 { get; init; }

    /// <summary>
    /// What of the file this backup stored in its bundle: null, all of it; "" nothing (it is the reference's); for a
    /// relation file the blocks, "0-5,9" (the tar entry holds them in that order).
    /// </summary>
    public string? Stored { get; init; }
}
