namespace CloudArchive.Core.Dump;

/// <summary>
/// The manifest's entry for one SQL dump, written last, after its data object is durable and pg_dump
/// (or pg_dumpall) has exited 0: a dump without its record does not exist.
/// </summary>
public sealed record DumpRecord
{
    /// <summary>The dump id: its start time (UTC) and a random suffix; it names the keys under dumps/.</summary>
    public required string Id { get; init; }
    /// <summary><see cref="DumpKind.Database"/> (pg_dump) or <see cref="DumpKind.Globals"/> (pg_dumpall --globals-only).</summary>
    public required string Kind { get; init; }
    /// <summary>The dumped database (current_database() of pg_dump's connection); null for globals.</summary>
    public string? Database { get; init; }
    /// <summary>custom, plain or directory, as asked for; globals are plain.</summary>
    public required string Format { get; init; }
    /// <summary>What pg_dump wrote to its stdout: custom, plain or tar (the directory format's files in one stream).</summary>
    public required string StreamFormat { get; init; }
    /// <summary>The key of the compressed dump object.</summary>
    public required string Key { get; init; }
    /// <summary>server_version of the dumped server.</summary>
    public required string ServerVersion { get; init; }
    /// <summary>server_version_num of the dumped server.</summary>
    public required int ServerVersionNum { get; init; }
    /// <summary>pg_dump --version (or pg_dumpall's) of the program that wrote the dump.</summary>
    public required string PgDumpVersion { get; init; }
    /// <summary>When pg_dump started: its snapshot is of this moment.</summary>
    public required DateTimeOffset StartTime { get; init; }
    /// <summary>When pg_dump exited.</summary>
    public required DateTimeOffset EndTime { get; init; }
    /// <summary>Bytes pg_dump wrote (uncompressed).</summary>
    public required long Size { get; init; }
    /// <summary>Bytes stored (compressed).</summary>
    public required long StoredSize { get; init; }
    /// <summary>SHA-256 of the uncompressed stream, hex.</summary>
    public required string Sha256 { get; init; }
    /// <summary>The object's compression (zstd).</summary>
    public required string Compression { get; init; }
}

/// <summary>The kinds of SQL dump, as <see cref="DumpRecord.Kind"/> spells them.</summary>
public static class DumpKind
{
    /// <summary>One database, by pg_dump.</summary>
    public const string Database = "database";
    /// <summary>Roles and tablespaces, by pg_dumpall --globals-only.</summary>
    public const string Globals = "globals";
}

/// <summary>The formats a database dump can be taken in, and what pg_dump is asked to stream for each.</summary>
public static class DumpFormat
{
    /// <summary>pg_dump -Fc: an archive pg_restore reads.</summary>
    public const string Custom = "custom";
    /// <summary>pg_dump -Fp: an SQL script psql replays.</summary>
    public const string Plain = "plain";
    /// <summary>pg_dump -Fd: a directory of files, streamed as tar.</summary>
    public const string Directory = "directory";

    /// <summary>
    /// pg_dump's -F value. The directory format exists only as files in a directory, so it is streamed as
    /// pg_dump's tar format, whose members are exactly the directory format's files (the manual: extracting
    /// a tar-format archive produces a valid directory-format archive).
    /// </summary>
    public static (string PgDumpFlag, string StreamFormat) ForPgDump(string format) => format switch
    {
        Custom => ("c", "custom"),
        Plain => ("p", "plain"),
        Directory => ("t", "tar"),
        _ => throw new CloudArchiveException(ExitCode.Usage, $"--format must be custom, plain or directory, not '{format}'"),
    };
}
