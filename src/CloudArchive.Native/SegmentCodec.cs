using System.Buffers;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace CloudArchive.Native;

/// <summary>
/// One WAL segment through the system's libzstd on plain threads, for the one-process-per-segment commands.
/// Pushing, the segment is compressed as independent frames of <see cref="FrameContent"/> bytes side by
/// side while another thread computes the SHA-256 (the concatenated frames are one ordinary zstd stream, at
/// a cost in size of about 0.2 % for restarting the 512 KiB window per frame). Fetching, one thread decodes
/// into a small ring of chunks while the calling thread hashes and writes them.
/// Why not the pipeline's async streams: in a process that lives for one segment, the thread pool's wake-ups and
/// the page faults of fresh memory cost a large share of its CPU (bench/RESULTS.md, "Figures behind the shape of
/// the code"), so nothing here holds more of a segment in private memory than it must.
/// </summary>
public static class SegmentCodec
{
    /// <summary>The largest content compressed in one block; larger files (wal_segment_size goes up to 1 GiB) stream.</summary>
    public const int MaxContent = 64 << 20;

    /// <summary>Content per frame: four frames for a 16 MiB segment.</summary>
    public const int FrameContent = 4 << 20;

    private const int Chunk = 256 << 10;
    private const int Depth = 4;

    /// <summary>True when the system's libzstd loads: the native codec and streams work; else callers use the managed port.</summary>
    public static bool Available => NativeZstd.Available;

    /// <summary>The output capacity <see cref="Compress(NativeBuffer, int, NativeBuffer, int, int)"/> needs for
    /// <paramref name="length"/> bytes of input.</summary>
    public static int Bound(int length)
    {
        var frames = Math.Max(1, (length + FrameContent - 1) / FrameContent);
        return frames * (int)NativeZstd.CompressBound((nuint)Math.Min(length, FrameContent));
    }

    /// <inheritdoc cref="Compress(byte*, int, NativeBuffer, int, int)"/>
    public static unsafe (ContentDigest Digest, int CompressedLength) Compress(NativeBuffer input, int length, NativeBuffer output, int level, int workers) =>
        Compress(input.Pointer, Math.Min(length, input.Length), output, level, workers);

    /// <summary>
    /// Compresses <paramref name="length"/> bytes at <paramref name="input"/> into <paramref name="output"/> (at least
    /// <see cref="Bound"/> bytes) on <paramref name="workers"/> threads; returns the SHA-256 and length of the input
    /// and the compressed length.
    /// </summary>
    internal static unsafe (ContentDigest Digest, int CompressedLength) Compress(byte* input, int length, NativeBuffer output, int level, int workers)
    {
        if (output.Length < Bound(length)) throw new ArgumentException("output buffer below the zstd bound", nameof(output));
        string? sha = null;
        Exception? hashFailure = null;
        var hasher = Start("sha256", () =>
        {
            // An exception escaping a thread would end the process with a stack trace: carry it back instead.
            try { sha = Convert.ToHexStringLower(SHA256.HashData(new ReadOnlySpan<byte>(input, length))); }
            catch (Exception e) { hashFailure = e; }
        });

        var frames = Math.Max(1, (length + FrameContent - 1) / FrameContent);
        var slot = (int)NativeZstd.CompressBound((nuint)Math.Min(length, FrameContent));
        var sizes = new nuint[frames];
        var dst = output.Pointer;
        var next = -1;
        void Work()
        {
            var cctx = NativeZstd.CreateCCtx();
            if (cctx == 0) throw new OutOfMemoryException("zstd: cannot create a compression context");
            try
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < frames)
                {
                    var offset = (long)i * FrameContent;
                    var size = (int)Math.Min(FrameContent, length - offset);
                    sizes[i] = NativeZstd.Check(NativeZstd.CompressCCtx(cctx, dst + (long)i * slot, (nuint)slot, input + offset, (nuint)size, level));
                }
            }
            finally
            {
                NativeZstd.FreeCCtx(cctx);
            }
        }
        try
        {
            RunOnThreads(Math.Clamp(workers, 1, frames), Work);
        }
        finally
        {
            hasher.Join();
        }
        if (hashFailure is not null) ExceptionDispatchInfo.Throw(hashFailure);

        // Each frame was written into its own slot; close the gaps (every move is to the left, in order).
        long end = 0;
        for (var i = 0; i < frames; i++)
        {
            if (end != (long)i * slot) Buffer.MemoryCopy(dst + (long)i * slot, dst + end, (long)sizes[i], (long)sizes[i]);
            end += (long)sizes[i];
        }
        return (new ContentDigest(sha!, length), (int)end);
    }

    /// <summary>
    /// Decodes the zstd stream read from <paramref name="input"/> into <paramref name="file"/> from offset 0: a
    /// second thread decodes while this one hashes and writes. Returns the SHA-256 and length of what was written
    /// (the SHA-256 empty when <paramref name="hash"/> is false: content authenticated on its way in needs none).
    /// Undecodable data raises <see cref="InvalidDataException"/>, a stream cut inside a frame <see cref="EndOfStreamException"/>.
    /// </summary>
    /// <param name="maxBytes">The most the content may decode to: one byte more is <see cref="InvalidDataException"/>, before it is written.</param>
    /// <param name="hash">Whether to compute the SHA-256 of the decoded bytes.</param>
    public static ContentDigest Decompress(Stream input, SafeFileHandle file, long maxBytes, bool hash = true)
    {
        var chunks = new byte[Depth][];
        for (var i = 0; i < Depth; i++) chunks[i] = ArrayPool<byte>.Shared.Rent(Chunk);
        var lengths = new int[Depth];
        using var free = new SemaphoreSlim(Depth);
        using var filled = new SemaphoreSlim(0);
        Exception? failure = null;
        var stop = false;
        var decoder = Start("zstd-decode", () =>
        {
            try
            {
                using var zstd = new ZstdDecompressStream(input, leaveOpen: true);
                for (var k = 0; ; k++)
                {
                    free.Wait();
                    if (Volatile.Read(ref stop)) return;
                    var n = zstd.ReadAtLeast(chunks[k % Depth], Chunk, throwOnEndOfStream: false);
                    lengths[k % Depth] = n;
                    filled.Release();
                    if (n == 0) return; // the end, and the sign of it
                }
            }
            catch (Exception e)
            {
                Volatile.Write(ref failure, e);
                filled.Release();
            }
        });

        using var sha = hash ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        long written = 0;
        try
        {
            for (var k = 0; ; k++)
            {
                filled.Wait();
                if (Volatile.Read(ref failure) is { } decodeFailure) ExceptionDispatchInfo.Throw(decodeFailure);
                var n = lengths[k % Depth];
                if (n == 0) break;
                if (written + n > maxBytes) throw BoundedReadStream.TooLong("the object", maxBytes);
                var chunk = chunks[k % Depth].AsSpan(0, n);
                sha?.AppendData(chunk);
                try
                {
                    RandomAccess.Write(file, chunk, written);
                }
                catch (IOException e)
                {
                    throw new OutputWriteException(e);
                }
                written += n;
                free.Release();
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            free.Release(Depth); // a decoder waiting for a chunk wakes, sees the stop and ends
            decoder.Join();
            foreach (var chunk in chunks) ArrayPool<byte>.Shared.Return(chunk);
        }
        return new ContentDigest(sha is null ? "" : Convert.ToHexStringLower(sha.GetHashAndReset()), written);
    }

    private static Thread Start(string name, Action work)
    {
        var thread = new Thread(() => work(), 256 << 10) { IsBackground = true, Name = name };
        thread.Start();
        return thread;
    }

    /// <summary>Runs <paramref name="work"/> on this thread and <paramref name="count"/> - 1 others; rethrows the first failure.</summary>
    private static void RunOnThreads(int count, Action work)
    {
        var failures = new Exception?[count];
        var threads = new Thread[count - 1];
        for (var t = 0; t < threads.Length; t++)
        {
            var index = t + 1;
            threads[t] = Start("zstd", () =>
            {
                try { work(); } catch (Exception e) { failures[index] = e; }
            });
        }
        try { work(); } catch (Exception e) { failures[0] = e; }
        foreach (var thread in threads) thread.Join();
        if (failures.FirstOrDefault(f => f is not null) is { } first) ExceptionDispatchInfo.Throw(first);
    }
}
