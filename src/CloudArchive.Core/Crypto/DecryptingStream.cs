using System.Security.Cryptography;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// Reads the plaintext of an encrypted object (<see cref="ObjectEnvelope"/>), one authenticated chunk at a time: no
/// byte is handed out before its chunk's tag is checked, and an object that stops before its final chunk or goes on
/// after it is corrupt (exit 5). Memory is two chunks, whatever the object's size.
/// </summary>
public sealed class DecryptingStream : ChunkedReadStream
{
    private readonly Stream _inner;
    private readonly string _what;
    private readonly AesGcm _gcm;
    private readonly byte[] _dataKey;
    private readonly byte[] _in;
    private readonly Carry _carry = new();
    private ulong _index;

    private DecryptingStream(Stream inner, string what, byte[] dataKey, int chunkSize)
    {
        _inner = inner;
        _what = what;
        _dataKey = dataKey;
        _gcm = new AesGcm(dataKey, ObjectEnvelope.TagSize);
        _in = new byte[chunkSize + ObjectEnvelope.TagSize];
    }

    /// <summary>Opens the header of <paramref name="inner"/> (the whole object from its first byte); the stream reads its plaintext.</summary>
    /// <param name="archiveId">The store's archive id (null in a store made before archive ids): the object must be bound to it.</param>
    /// <param name="what">How messages name the object.</param>
    public static async Task<(ObjectMetadata Metadata, Stream Plaintext)> OpenAsync(
        Stream inner, string objectKey, KeyRing keys, string? archiveId, string what, CancellationToken ct)
    {
        var (metadata, dataKey, chunk) = await ObjectEnvelope.OpenHeaderAsync(inner, objectKey, keys, archiveId, what, ct).ConfigureAwait(false);
        return (metadata, new DecryptingStream(inner, what, dataKey, chunk));
    }

    /// <summary>
    /// A reader whose buffer holds a whole chunk (the zstd decoder's, on the fetch of a segment) gets it decrypted
    /// straight into that buffer: one copy of the object less on the fetch's critical path.
    /// </summary>
    public override int Read(Span<byte> buffer)
    {
        if (!NeedsChunk || buffer.Length < _in.Length - ObjectEnvelope.TagSize) return base.Read(buffer);
        var (filled, last) = FillChunkAsync(_inner, _in, _carry, useAsync: false, default).AsTask().GetAwaiter().GetResult();
        var length = Open(filled, last, buffer);
        HandedOutDirectly(length, last);
        return length;
    }

    /// <inheritdoc />
    protected override async ValueTask NextChunkAsync(bool useAsync, CancellationToken ct)
    {
        var (filled, last) = await FillChunkAsync(_inner, _in, _carry, useAsync, ct).ConfigureAwait(false);
        // In place otherwise: one buffer and one copy less, in a process that lives for one segment.
        var length = Open(filled, last, _in);
        SetChunk(_in.AsMemory(0, length), last);
    }

    /// <summary>Authenticates and decrypts the chunk in <c>_in</c> into <paramref name="target"/>; returns its length.</summary>
    private int Open(int filled, bool last, Span<byte> target)
    {
        if (filled < ObjectEnvelope.TagSize)
            throw new CorruptObjectException($"{_what} is truncated: it ends before its last encrypted chunk");
        var length = filled - ObjectEnvelope.TagSize;
        Span<byte> nonce = stackalloc byte[12];
        ObjectEnvelope.Nonce(_index++, nonce);
        ReadOnlySpan<byte> aad = [last ? (byte)1 : (byte)0];
        try
        {
            _gcm.Decrypt(nonce, _in.AsSpan(0, length), _in.AsSpan(length, ObjectEnvelope.TagSize), target[..length], aad);
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new CorruptObjectException(
                $"{_what} does not authenticate at encrypted chunk {_index - 1}: altered, truncated, reordered or with the wrong key", e);
        }
        return length;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _gcm.Dispose();
            CryptographicOperations.ZeroMemory(_dataKey);
            _inner.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        _gcm.Dispose();
        CryptographicOperations.ZeroMemory(_dataKey);
        await _inner.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
