namespace CloudArchive.Core.Backup;

/// <summary>
/// A read-only stream of known length that a TarWriter copies into an entry: it reports CanSeek so TarWriter takes its
/// Length up front, and never seeks. Subclasses count what they hand out in <see cref="Advance"/>.
/// </summary>
internal abstract class TarEntryReadStream : Stream
{
    private long _position;

    protected void Advance(int n) => _position += n;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Position { get => _position; set { if (value != _position) throw new NotSupportedException(); } }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) =>
        (origin == SeekOrigin.Current && offset == 0) || (origin == SeekOrigin.Begin && offset == _position) ? _position : throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
