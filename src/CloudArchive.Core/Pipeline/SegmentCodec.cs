using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace CloudArchive.Core.Pipeline;

/// <summary>
/// A WAL segment compressed as a few independent zstd frames of <see cref="FrameContent"/> bytes, with the
/// system's libzstd, on plain threads: pushing, the frames are compressed side by side while another thread
/// computes the SHA-256; fetching, they are decoded side by side while the calling thread hashes and writes
/// each one in order. The concatenated frames are an ordinary zstd stream (any zstd reader, including the
/// streaming path, decodes it), at a cost in size of about 0.1 % for restarting the 512 KiB window per frame.
/// No thread pool: in a process that lives for one segment, its wake-ups and spinning cost a fifth of the CPU.
/// </summary>
public static class SegmentCodec
{
    /// <summary>The largest content handled in one block; larger files (wal_segment_size goes up to 1 GiB) stream.</summary>
    public const int MaxContent = 64 << 20;

    /// <summary>Content per frame: four frames for a 16 MiB segment, so decoding can use up to four cores.</summary>
    public const int FrameContent = 4 << 20;

    public static bool Available => NativeZstd.Available;

    /// <summary>The output capacity <see cref="Compress"/> needs for <paramref name="length"/> bytes of input.</summary>
    public static int Bound(int length)
    {
        var frames = Math.Max(1, (length + FrameContent - 1) / FrameContent);
        return frames * (int)NativeZstd.CompressBound((nuint)Math.Min(length, FrameContent));
    }

    /// <summary>
    /// Compresses <c>input[..length]</c> into <paramref name="output"/> (at least <see cref="Bound"/> bytes) on
    /// <paramref name="workers"/> threads; returns the SHA-256 and length of the input and the compressed length.
    /// </summary>
    public static unsafe (ContentDigest Digest, int CompressedLength) Compress(NativeBuffer input, int length, NativeBuffer output, int level, int workers)
    {
        if (output.Length < Bound(length)) throw new ArgumentException("output buffer below the zstd bound", nameof(output));
        string? sha = null;
        var hasher = Start("sha256", () => sha = Convert.ToHexStringLower(SHA256.HashData(input.GetSpan()[..length])));

        var frames = Math.Max(1, (length + FrameContent - 1) / FrameContent);
        var slot = (int)NativeZstd.CompressBound((nuint)Math.Min(length, FrameContent));
        var sizes = new nuint[frames];
        var src = input.Pointer;
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
                    sizes[i] = NativeZstd.Check(NativeZstd.CompressCCtx(cctx, dst + (long)i * slot, (nuint)slot, src + offset, (nuint)size, level));
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
    /// Decodes <c>compressed[..compressedLength]</c>, whose content was recorded as <paramref name="expectedLength"/>
    /// bytes, into <paramref name="file"/> from offset 0, frames side by side on <paramref name="workers"/> threads;
    /// returns the SHA-256 and length of what was written. Null, with nothing written, when the stream is not
    /// several frames that each state their content size (objects written before frames, small files): stream those.
    /// Content that does not decode, or decodes to another length, raises <see cref="InvalidDataException"/>.
    /// </summary>
    public static unsafe ContentDigest? TryDecompressTo(NativeBuffer compressed, int compressedLength, int expectedLength, SafeFileHandle file, int workers)
    {
        var src = compressed.Pointer;
        var frames = new List<(long Source, int SourceSize, long Target, int Size)>();
        long position = 0, target = 0;
        while (position < compressedLength)
        {
            var remaining = (nuint)(compressedLength - position);
            var frameSize = NativeZstd.FindFrameCompressedSize(src + position, remaining);
            var contentSize = NativeZstd.GetFrameContentSize(src + position, remaining);
            if (NativeZstd.IsError(frameSize) != 0 && frames.Count > 0)
                throw new InvalidDataException($"zstd: frame {frames.Count + 1} is cut short or damaged");
            if (NativeZstd.IsError(frameSize) != 0 || contentSize >= ulong.MaxValue - 1 || contentSize > FrameContent) return null;
            frames.Add((position, (int)frameSize, target, (int)contentSize));
            position += (long)frameSize;
            target += (long)contentSize;
        }
        if (frames.Count < 2) return null;
        if (target != expectedLength)
            throw new InvalidDataException($"zstd: the frames hold {target} bytes of content, {expectedLength} were recorded");

        using var content = new NativeBuffer(expectedLength);
        var dst = content.Pointer;
        var done = new bool[frames.Count];
        var gate = new object();
        Exception? failure = null;
        var next = -1;
        void Work()
        {
            var dctx = NativeZstd.CreateDCtx();
            if (dctx == 0) throw new OutOfMemoryException("zstd: cannot create a decompression context");
            try
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < frames.Count && Volatile.Read(ref failure) is null)
                {
                    var f = frames[i];
                    var produced = NativeZstd.Check(NativeZstd.DecompressDCtx(dctx, dst + f.Target, (nuint)f.Size, src + f.Source, (nuint)f.SourceSize));
                    if ((int)produced != f.Size) throw new InvalidDataException($"zstd: a frame decoded to {produced} bytes, its header says {f.Size}");
                    lock (gate)
                    {
                        done[i] = true;
                        Monitor.PulseAll(gate);
                    }
                }
            }
            catch (Exception e)
            {
                lock (gate)
                {
                    failure ??= e;
                    Monitor.PulseAll(gate);
                }
            }
            finally
            {
                NativeZstd.FreeDCtx(dctx);
            }
        }
        var threads = new Thread[Math.Clamp(workers, 1, frames.Count)];
        for (var t = 0; t < threads.Length; t++) threads[t] = Start("zstd-decode", Work);

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            for (var i = 0; i < frames.Count; i++)
            {
                lock (gate)
                {
                    while (!done[i] && failure is null) Monitor.Wait(gate);
                    if (failure is not null) break;
                }
                var stretch = new ReadOnlySpan<byte>(dst + frames[i].Target, frames[i].Size);
                sha.AppendData(stretch);
                RandomAccess.Write(file, stretch, frames[i].Target);
            }
        }
        catch (Exception e)
        {
            lock (gate) failure ??= e; // the decoders stop at their next frame
            throw;
        }
        finally
        {
            foreach (var thread in threads) thread.Join();
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return new ContentDigest(Convert.ToHexStringLower(sha.GetHashAndReset()), expectedLength);
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
        if (failures.FirstOrDefault(f => f is not null) is { } first) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
    }
}
