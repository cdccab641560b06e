using System.Security.Cryptography;

namespace CloudArchive.Core.Backup;

/// <summary>
/// A file read as exactly <c>length</c> bytes, whatever it does meanwhile: a file that grows is cut at
/// the size it had when listed, one that shrinks is padded with zeros (WAL replay repairs both, as with
/// pg_basebackup). Hashes what it hands out, so the recorded SHA-256 is of the stored bytes; given a
/// <see cref="BlockHasher"/>, builds the block map of those bytes too (and only that, without <paramref name="sha256"/>).
/// </summary>
internal sealed class SnapshotReadStream(Stream file, long length, bool ownsFile = true, BlockHasher? blocks = null, bool sha256 = true)
    : TarEntryReadStream
{
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private bool _fileEnded;

    public string Sha256() => Convert.ToHexStringLower(_sha.GetHashAndReset());

    public override int Read(Span<byte> buffer)
    {
        var want = (int)Math.Min(buffer.Length, length - Position);
        if (want <= 0) return 0;
        var n = _fileEnded ? 0 : file.Read(buffer[..want]);
        if (n == 0)
        {
            _fileEnded = true;
            buffer[..want].Clear();
            n = want;
        }
        if (sha256) _sha.AppendData(buffer[..n]);
        blocks?.Append(buffer[..n]);
        Advance(n);
        return n;
    }

    public override long Length => length;

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _sha.Dispose(); if (ownsFile) file.Dispose(); }
        base.Dispose(disposing);
    }
}
