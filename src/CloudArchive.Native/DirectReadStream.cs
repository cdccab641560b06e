using Microsoft.Win32.SafeHandles;

namespace CloudArchive.Native;

/// <summary>
/// Reads a file from its start past the page cache (O_DIRECT), in aligned 2 MiB chunks, two of them on their way from the
/// disk while the reader works on the one before. A buffered read copies every byte into the page cache first and the
/// kernel then reclaims it: a full backup of a 4 GiB cluster spent 2.4-7 CPU-seconds in the kernel on two cores,
/// most of it on reads. A file system that refuses O_DIRECT reads (at open or at the first read) is read through the
/// page cache with the handle the file was first opened with, at the same offsets.
/// </summary>
/// <remarks>
/// A direct read sees what a buffered one sees: the kernel writes back the range's dirty pages before it reads, so a page
/// the server has just written is read as written. Reads stop at <c>limit</c> (rounded up to the alignment), or earlier
/// at the file's end.
/// </remarks>
public sealed class DirectReadStream : Stream
{
    private const int ChunkSize = 2 << 20;
    // Reads on their way besides the chunk being read from.
    private const int Ahead = 2;
    private readonly SafeFileHandle _direct;
    private readonly SafeFileHandle _buffered;
    private readonly long _limit;
    private readonly Queue<(Task<int> Read, NativeBuffer Buffer, int Asked)> _reading = new();
    private static readonly System.Collections.Concurrent.ConcurrentBag<NativeBuffer> Idle = [];
    private readonly Stack<NativeBuffer> _free = new();
    private NativeBuffer? _current;
    private int _currentLength, _currentOffset;
    private long _nextOffset, _position;
    private bool _ended;
    private volatile bool _directRefused;

    private DirectReadStream(SafeFileHandle direct, SafeFileHandle buffered, long limit)
    {
        _direct = direct;
        _buffered = buffered;
        _limit = (limit + DirectFileWriter.Alignment - 1) / DirectFileWriter.Alignment * DirectFileWriter.Alignment;
        for (var i = 0; i <= Ahead; i++) _free.Push(Idle.TryTake(out var idle) ? idle : new NativeBuffer(ChunkSize));
        for (var i = 0; i <= Ahead; i++) StartNext();
    }

    /// <summary>
    /// A reader of <paramref name="path"/> past the page cache, up to <paramref name="limit"/> bytes; null when the file system
    /// refuses O_DIRECT (or the file is gone: <paramref name="buffered"/>, already open, is read as before).
    /// </summary>
    /// <param name="buffered">The file opened as usual: what is read when a direct read is refused. Not closed here.</param>
    public static DirectReadStream? TryOpen(string path, SafeFileHandle buffered, long limit) =>
        Posix.OpenDirectRead(path) is { } handle ? new DirectReadStream(handle, buffered, limit) : null;

    private void StartNext()
    {
        if (_ended || _nextOffset >= _limit || _free.Count == 0) return;
        var buffer = _free.Pop();
        var offset = _nextOffset;
        var length = (int)Math.Min(ChunkSize, _limit - offset);
        _nextOffset += length;
        _reading.Enqueue((DiskThreads.Run(() => ReadChunk(buffer, offset, length)), buffer, length));
    }

    private int ReadChunk(NativeBuffer buffer, long offset, int length)
    {
        var span = buffer.GetSpan()[..length];
        var read = 0;
        while (read < length)
        {
            int n;
            if (!_directRefused)
                try
                {
                    n = RandomAccess.Read(_direct, span[read..], offset + read);
                }
                catch (IOException)
                {
                    // A file system that opens with O_DIRECT but refuses the read: the rest through the page cache.
                    _directRefused = true;
                    continue;
                }
            else n = RandomAccess.Read(_buffered, span[read..], offset + read);
            if (n == 0) break;
            read += n;
            // A direct read stops short only at the file's end (or before an unaligned tail, which the next read returns).
        }
        return read;
    }

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0) return 0;
        while (_current is null || _currentOffset == _currentLength)
        {
            if (_current is not null)
            {
                _free.Push(_current);
                _current = null;
                StartNext();
            }
            if (_ended || !_reading.TryDequeue(out var next)) return 0;
            _current = next.Buffer;
            _currentLength = next.Read.GetAwaiter().GetResult();
            _currentOffset = 0;
            // A short chunk is the file's end as it was then: nothing after it is read, even if the file grew since.
            if (_currentLength < next.Asked) _ended = true;
        }
        var count = Math.Min(buffer.Length, _currentLength - _currentOffset);
        _current.GetSpan().Slice(_currentOffset, count).CopyTo(buffer);
        _currentOffset += count;
        _position += count;
        return count;
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc/>
    public override bool CanRead => true;
    /// <inheritdoc/>
    public override bool CanSeek => false;
    /// <inheritdoc/>
    public override bool CanWrite => false;
    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();
    /// <inheritdoc/>
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    /// <inheritdoc/>
    public override void Flush() { }
    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();
    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    // Kept for the next file (a cluster has thousands of relation files of a few MiB), up to a bound.
    private static void Release(NativeBuffer buffer)
    {
        if (Idle.Count < 8) Idle.Add(buffer);
        else buffer.Dispose();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // The reads still on their way write into their buffers: wait for them before the buffers go.
            while (_reading.TryDequeue(out var r))
            {
                try
                {
                    r.Read.GetAwaiter().GetResult();
                }
                catch (IOException)
                {
                    // Not read after all: nothing depends on it.
                }
                Release(r.Buffer);
            }
            if (_current is not null) Release(_current);
            while (_free.TryPop(out var b)) Release(b);
            _direct.Dispose();
        }
        base.Dispose(disposing);
    }
}
