using System.Security.Cryptography;

namespace CloudArchive.Postgres;

/// <summary>
/// A file read as exactly <c>length</c> bytes, whatever it does meanwhile: a file that grows is cut at
/// the size it had when listed, one that shrinks is padded with zeros (WAL replay repairs both, as with
/// pg_basebackup). Hashes what it hands out, so the recorded SHA-256 is of the stored bytes.
/// </summary>
internal sealed class SnapshotReadStream(Stream file, long length, bool ownsFile = true) : Stream
{
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _position;
    private bool _fileEnded;

    public string Sha256() => Convert.ToHexStringLower(_sha.GetHashAndReset());

    public override int Read(Span<byte> buffer)
    {
        var want = (int)Math.Min(buffer.Length, length - _position);
        if (want <= 0) return 0;
        var n = _fileEnded ? 0 : file.Read(buffer[..want]);
        if (n == 0)
        {
            _fileEnded = true;
            buffer[..want].Clear();
            n = want;
        }
        _sha.AppendData(buffer[..n]);
        _position += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override bool CanRead => true;
    public override bool CanSeek => true; // TarWriter needs Length up front; it never seeks
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _position; set { if (value != _position) throw new NotSupportedException(); } }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) =>
        (origin == SeekOrigin.Current && offset == 0) || (origin == SeekOrigin.Begin && offset == _position) ? _position : throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _sha.Dispose(); if (ownsFile) file.Dispose(); }
        base.Dispose(disposing);
    }
}
