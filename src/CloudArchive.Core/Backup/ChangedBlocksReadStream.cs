using CloudArchive.Native;
using Microsoft.Win32.SafeHandles;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The changed blocks of a relation file, one after another, as an incremental backup's tar entry holds them. Each block
/// is read again here and its hash written into the map: the map always describes the bytes stored, even when the
/// block changed again since it was compared; <see cref="Sha256"/> is of the bytes handed out. Beyond the file's end (it shrank meanwhile) a block reads as zeros, as a
/// base backup reads it; WAL replay repairs both.
/// </summary>
internal sealed class ChangedBlocksReadStream : TarEntryReadStream
{
    private const int ReadBlocks = 128;
    /// <summary>How far ahead of the reads the kernel is asked to fetch the changed runs (posix_fadvise WILLNEED).</summary>
    private const long AdviseAhead = 32L << 20;
    private readonly SafeFileHandle _file;
    private readonly long _size;
    private readonly int _blockSize;
    private readonly byte[] _map;
    private readonly IEnumerator<(long First, long Last)> _runs;
    private readonly byte[] _buffer;
    private long _nextBlock = -1, _runLast = -2;
    private readonly IEnumerator<(long First, long Last)> _adviseRuns;
    private long _adviseNext = -1, _adviseLast = -2, _advisedAhead;
    private int _bufferStart, _bufferEnd;
    private readonly System.Security.Cryptography.IncrementalHash _sha =
        System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);

    public string Sha256() => Convert.ToHexStringLower(_sha.GetHashAndReset());

    public ChangedBlocksReadStream(SafeFileHandle file, long size, int blockSize, BlockRanges blocks, byte[] map)
    {
        _file = file;
        _size = size;
        _blockSize = blockSize;
        _map = map;
        _runs = blocks.Runs.GetEnumerator();
        _adviseRuns = blocks.Runs.GetEnumerator();
        _buffer = new byte[ReadBlocks * blockSize];
        Length = BlockMap.StoredBytes(blocks, size, blockSize);
    }

    public override int Read(Span<byte> buffer)
    {
        if (_bufferStart == _bufferEnd && !Fill()) return 0;
        var n = Math.Min(buffer.Length, _bufferEnd - _bufferStart);
        _buffer.AsSpan(_bufferStart, n).CopyTo(buffer);
        _bufferStart += n;
        Advance(n);
        return n;
    }

    /// <summary>Reads up to <see cref="ReadBlocks"/> blocks of the current run with one pread, hashing each.</summary>
    private bool Fill()
    {
        if (_nextBlock > _runLast)
        {
            if (!_runs.MoveNext()) return false;
            (_nextBlock, _runLast) = _runs.Current;
        }
        var count = (int)Math.Min(ReadBlocks, _runLast - _nextBlock + 1);
        var offset = _nextBlock * _blockSize;
        var bytes = (int)Math.Min((long)count * _blockSize, _size - offset);
        AdviseAheadOf((long)count * _blockSize);
        var read = 0;
        while (read < bytes)
        {
            var n = RandomAccess.Read(_file, _buffer.AsSpan(read, bytes - read), offset + read);
            if (n == 0) break;
            read += n;
        }
        _buffer.AsSpan(read, bytes - read).Clear();
        for (var i = 0; i < count; i++)
        {
            var start = i * _blockSize;
            var length = Math.Min(_blockSize, bytes - start);
            BlockMap.Hash(_buffer.AsSpan(start, length), _map.AsSpan((int)((_nextBlock + i) * BlockMap.HashBytes), BlockMap.HashBytes));
        }
        _sha.AppendData(_buffer.AsSpan(0, bytes));
        _nextBlock += count;
        _bufferStart = 0;
        _bufferEnd = bytes;
        return true;
    }

    /// <summary>
    /// Keeps the kernel fetching the runs up to <see cref="AdviseAhead"/> beyond the read about to be made (of
    /// <paramref name="reading"/> bytes): the changed runs of a file are scattered, and read one after another each
    /// would wait for the disk alone; asked for together, the disk gets them in one deep queue.
    /// </summary>
    private void AdviseAheadOf(long reading)
    {
        while (_advisedAhead < reading + AdviseAhead)
        {
            if (_adviseNext > _adviseLast)
            {
                if (!_adviseRuns.MoveNext()) break;
                (_adviseNext, _adviseLast) = _adviseRuns.Current;
            }
            var blocks = Math.Min(_adviseLast - _adviseNext + 1, AdviseAhead / _blockSize);
            Posix.AdviseWillNeed(_file, _adviseNext * _blockSize, blocks * _blockSize);
            _adviseNext += blocks;
            _advisedAhead += blocks * _blockSize;
        }
        _advisedAhead -= reading;
    }

    public override long Length { get; }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _runs.Dispose(); _adviseRuns.Dispose(); _sha.Dispose(); }
        base.Dispose(disposing);
    }
}
