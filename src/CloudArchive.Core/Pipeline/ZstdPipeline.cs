using System.Buffers;
using CloudArchive.Native;
using System.Security.Cryptography;
using ZstdSharp;

namespace CloudArchive.Core.Pipeline;

/// <summary>
/// Checksum and zstd in one streaming pass, in both directions: the SHA-256 is always of the uncompressed
/// bytes, so a restore can prove it hands back exactly what was archived.
/// </summary>
public static class ZstdPipeline
{
    /// <summary>The compression name recorded in manifests.</summary>
    public const string Compression = "zstd";
    private const int ChunkSize = 256 * 1024;

    /// <param name="workers">zstd threads; above 1 compression runs on several cores (large streams only).</param>
    /// <param name="progress">Told each chunk of <paramref name="input"/> (uncompressed bytes) as it is read.</param>
    public static async Task<ContentDigest> CompressAsync(Stream input, Stream output, int level, CancellationToken ct, long pledgedSize = -1, int workers = 1,
        IProgress<long>? progress = null)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        long total = 0;
        try
        {
            await using var zstd = OpenCompressor(output, level, workers, pledgedSize);
            int n;
            while ((n = await input.ReadAsync(buffer.AsMemory(0, ChunkSize), ct).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await zstd.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                total += n;
                progress?.Report(n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new ContentDigest(Convert.ToHexStringLower(sha.GetHashAndReset()), total);
    }

    /// <summary>
    /// A write stream that compresses into <paramref name="output"/> (left open); the frame ends on dispose.
    /// The system's libzstd when it is there (faster), else the managed port; both write the same format.
    /// </summary>
    public static Stream OpenCompressor(Stream output, int level, int workers = 1, long pledgedSize = -1)
    {
        if (SegmentCodec.Available) return new ZstdCompressStream(output, level, workers, pledgedSize, leaveOpen: true);
        var zstd = new CompressionStream(output, level, ChunkSize, leaveOpen: true);
        if (pledgedSize >= 0) zstd.SetPledgedSrcSize((ulong)pledgedSize);
        if (workers > 1) zstd.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_nbWorkers, workers);
        return zstd;
    }

    /// <summary>
    /// A read stream of the content of the zstd frames in <paramref name="input"/> (left open); truncated or
    /// undecodable data raises <see cref="InvalidDataException"/>, <see cref="EndOfStreamException"/> or
    /// <see cref="ZstdException"/>. The system's libzstd when it is there, else the managed port.
    /// </summary>
    public static Stream OpenDecompressor(Stream input) =>
        SegmentCodec.Available ? new ZstdDecompressStream(input, leaveOpen: true)
            : new DecompressionStream(input, ChunkSize, checkEndOfStream: true, leaveOpen: true);

    /// <summary>
    /// Decompresses into <paramref name="output"/>, never more than <paramref name="maxBytes"/>: a stream that is not
    /// valid zstd, or that decodes past the bound, raises <see cref="CorruptObjectException"/>. <paramref name="progress"/> is told
    /// each chunk of decoded bytes as it is written.
    /// </summary>
    public static async Task<ContentDigest> DecompressAsync(Stream input, Stream output, string what, long maxBytes, CancellationToken ct,
        IProgress<long>? progress = null)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        long total = 0;
        try
        {
            await using var zstd = new BoundedReadStream(OpenDecompressor(input), maxBytes, what);
            // zstd on one core, SHA-256 and the writes on another.
            await using var ahead = new ReadAheadStream(zstd, depth: 4);
            int n;
            while ((n = await ahead.ReadAsync(buffer.AsMemory(0, ChunkSize), ct).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                total += n;
                progress?.Report(n);
            }
        }
        catch (Exception e) when (e is ZstdException or EndOfStreamException or InvalidDataException)
        {
            throw new CorruptObjectException($"{what} is corrupt: its zstd stream does not decode ({e.Message})", e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new ContentDigest(Convert.ToHexStringLower(sha.GetHashAndReset()), total);
    }
}

