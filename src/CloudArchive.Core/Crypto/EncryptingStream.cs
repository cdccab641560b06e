using System.Security.Cryptography;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// Reads as the encrypted object (<see cref="ObjectEnvelope"/>) of a plaintext stream, one chunk at a time: memory is
/// two chunks whatever the object's size. Over a seekable source it has a length and can be rewound to its start (a
/// retried request), which starts over with a new data key: a nonce is never used twice with one key.
/// </summary>
public sealed class EncryptingStream : ChunkedReadStream
{
    private readonly Stream _source;
    private readonly long _sourceStart;
    private readonly string _objectKey;
    private readonly ObjectMetadata _metadata;
    private readonly EncryptionKey _key;
    private readonly byte[] _dataKey = new byte[EncryptionKey.Size];
    // One buffer: each chunk is encrypted in place and its tag follows it.
    private readonly byte[] _chunk = new byte[ObjectEnvelope.ChunkSize + ObjectEnvelope.TagSize];
    private readonly Carry _carry = new();
    private readonly string? _archiveId;
    private AesGcm _gcm = null!;
    private byte[] _header = [];
    private ulong _index;

    /// <param name="source">The plaintext, read from its current position.</param>
    /// <param name="objectKey">The store key: the data key is bound to it.</param>
    /// <param name="metadata">The object's real metadata, stored encrypted in the header.</param>
    /// <param name="key">The archive key that wraps the data key.</param>
    /// <param name="archiveId">The store's archive id the object is bound to; null in a store made before archive ids.</param>
    public EncryptingStream(Stream source, string objectKey, ObjectMetadata metadata, EncryptionKey key, string? archiveId)
    {
        _archiveId = archiveId;
        _source = source;
        _sourceStart = source.CanSeek ? source.Position : 0;
        _objectKey = objectKey;
        _metadata = metadata;
        _key = key;
        Start();
    }

    private void Start()
    {
        _gcm?.Dispose();
        _header = ObjectEnvelope.NewHeader(_key, _objectKey, _metadata, _dataKey, _archiveId);
        _gcm = new AesGcm(_dataKey, ObjectEnvelope.TagSize);
        Restart(_header);
        _index = 0;
        _carry.Byte = -1;
    }

    /// <inheritdoc />
    public override bool CanSeek => _source.CanSeek;

    /// <inheritdoc />
    public override long Length
    {
        get
        {
            if (!_source.CanSeek) throw new NotSupportedException();
            var plain = _source.Length - _sourceStart;
            var chunks = plain == 0 ? 1 : (plain + ObjectEnvelope.ChunkSize - 1) / ObjectEnvelope.ChunkSize;
            return _header.Length + plain + chunks * ObjectEnvelope.TagSize;
        }
    }

    /// <summary>Where the reader is; set only to 0, which starts the object over (a retried request).</summary>
    public override long Position
    {
        get => Emitted;
        set
        {
            if (value == Emitted) return;
            if (value != 0 || !_source.CanSeek) throw new NotSupportedException("an encrypting stream rewinds only to its start");
            _source.Position = _sourceStart;
            Start();
        }
    }

    /// <summary>Encrypts the next chunk; the last one (known by reading one byte ahead) carries the final flag.</summary>
    /// <inheritdoc />
    protected override async ValueTask NextChunkAsync(bool useAsync, CancellationToken ct)
    {
        var (filled, last) = await FillChunkAsync(_source, _chunk.AsMemory(0, ObjectEnvelope.ChunkSize), _carry, useAsync, ct).ConfigureAwait(false);
        Span<byte> nonce = stackalloc byte[12];
        ObjectEnvelope.Nonce(_index++, nonce);
        ReadOnlySpan<byte> aad = [last ? (byte)1 : (byte)0];
        _gcm.Encrypt(nonce, _chunk.AsSpan(0, filled), _chunk.AsSpan(0, filled), _chunk.AsSpan(filled, ObjectEnvelope.TagSize), aad);
        SetChunk(_chunk.AsMemory(0, filled + ObjectEnvelope.TagSize), last);
    }

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin)
    {
        if (origin == SeekOrigin.Begin) Position = offset;
        else if (!(origin == SeekOrigin.Current && offset == 0)) throw new NotSupportedException("an encrypting stream rewinds only to its start");
        return Emitted;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _gcm.Dispose();
            CryptographicOperations.ZeroMemory(_dataKey);
        }
        base.Dispose(disposing);
    }
}
