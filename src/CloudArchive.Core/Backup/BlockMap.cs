using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The block map of a relation file: the 128-bit xxHash3 of each block, in order. An incremental backup stores the
/// blocks whose hash differs from its reference's map, and a delta restore rewrites the local blocks whose hash differs
/// from the backup's. The map finds what changed; what is restored is proven otherwise: every map slice and every
/// stored byte are checked against SHA-256 digests in the record. Content decides, never page LSNs or file times:
/// hint bits, FILE_COPY databases, SET TABLESPACE and re-extended files move pages the LSN does not tell about.
/// </summary>
public static partial class BlockMap
{
    /// <summary>Bytes of one block's hash in a map.</summary>
    public const int HashBytes = 16;

    /// <summary>PostgreSQL's page size, the default; a record says the one it used.</summary>
    public const int DefaultBlockSize = 8192;

    [GeneratedRegex(@"^(global|base/\d+|pg_tblspc/\d+/PG_[^/]+/\d+)/\d+(_(fsm|vm|init))?(\.\d+)?$")]
    private static partial Regex RelationPath();

    /// <summary>Whether the backup path names a relation file (any fork, any segment), which is backed up block by block.</summary>
    public static bool IsRelationFile(string path) => RelationPath().IsMatch(path);

    /// <summary>Blocks of a file of <paramref name="size"/> bytes (the last may be short).</summary>
    public static long BlockCount(long size, int blockSize) => (size + blockSize - 1) / blockSize;

    /// <summary>Bytes of block <paramref name="block"/> of a file of <paramref name="size"/> bytes.</summary>
    public static int BlockLength(long block, long size, int blockSize) => (int)Math.Min(blockSize, size - block * blockSize);

    /// <summary>Bytes the blocks <paramref name="blocks"/> of such a file add up to.</summary>
    public static long StoredBytes(BlockRanges blocks, long size, int blockSize)
    {
        long total = 0;
        foreach (var (first, last) in blocks.Runs)
            total += (last - first + 1) * (long)blockSize - (last == BlockCount(size, blockSize) - 1 ? blockSize - BlockLength(last, size, blockSize) : 0);
        return total;
    }

    /// <summary>Writes the hash of <paramref name="block"/> into <paramref name="destination"/> (<see cref="HashBytes"/> bytes).</summary>
    public static void Hash(ReadOnlySpan<byte> block, Span<byte> destination) => XxHash128.Hash(block, destination);

    /// <summary>The SHA-256 (hex) of a map slice: what a record stores of it.</summary>
    public static string Digest(ReadOnlySpan<byte> map) => Convert.ToHexStringLower(SHA256.HashData(map));
}
