using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// The format of an encrypted object. A header: magic, the archive key's id, the chunk size, the object's own
/// metadata (encrypted), the store's archive id (version 2), and a fresh random 256-bit data key wrapped by the
/// archive key (AES-256-GCM, bound to the header and the object's name: an object copied under another name, or
/// into another store under the same key, does not open). Then the content (zstd output) in chunks of
/// <see cref="ChunkSize"/> bytes, each AES-256-GCM under the data key with its index as nonce and a final flag as
/// associated data: a flipped, truncated, reordered or extended object fails to authenticate.
/// <code>
/// magic(8) key-id(8) chunk-size(4) metadata-length(4) [archive-id(16), version 2] | wrap-nonce(12) wrapped-data-key(32) wrap-tag(16)
/// | metadata(metadata-length) metadata-tag(16) | chunk 0 + tag(16) | chunk 1 + tag(16) | ... (the last one flagged final)
/// </code>
/// Version 1 (no archive id) is what stores whose marker names no archive id (made before archive ids) keep
/// writing; a store whose marker names one reads only version 2 objects of that id.
/// </summary>
public static class ObjectEnvelope
{
    /// <summary>
    /// Plaintext bytes per chunk: bounded memory at both ends, 16 bytes of tag per 128 KiB, and the size the zstd
    /// decoder reads at a time, so a fetch decrypts straight into the decoder's buffer.
    /// </summary>
    public const int ChunkSize = 128 << 10;

    /// <summary>AES-GCM tag length.</summary>
    public const int TagSize = 16;

    /// <summary>The clear metadata entry naming the key an object is encrypted with.</summary>
    public const string KeyIdMetadata = "cakeyid";

    /// <summary>The clear metadata entry holding the keyed MAC of the object's real metadata.</summary>
    public const string MacMetadata = "camac";

    private const int FixedHeader = 24;
    private const int ArchiveIdSize = 16;
    internal const int WrapSize = 12 + EncryptionKey.Size + TagSize;
    private const int MaxMetadata = 64 << 10;
    private static ReadOnlySpan<byte> Magic => "CAENCv1\n"u8;
    private static ReadOnlySpan<byte> MagicBound => "CAENCv2\n"u8;

    /// <summary>True when <paramref name="start"/> (the first 8 bytes of an object) opens an encrypted object.</summary>
    public static bool IsEncrypted(ReadOnlySpan<byte> start) =>
        start.Length >= Magic.Length && (start[..Magic.Length].SequenceEqual(Magic) || start[..Magic.Length].SequenceEqual(MagicBound));

    /// <summary>The magic's length: how much of an object to look at to tell.</summary>
    public static int MagicLength => Magic.Length;

    /// <summary>The header's clear part: longer by the archive id in version 2.</summary>
    private static int ClearHeader(string? archiveId) => archiveId is null ? FixedHeader : FixedHeader + ArchiveIdSize;

    /// <summary>The nonce of chunk <paramref name="index"/> (the metadata uses the all-ones nonce, which no chunk reaches).</summary>
    internal static void Nonce(ulong index, Span<byte> nonce)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], index);
    }

    /// <summary>
    /// The header of a new object under <paramref name="key"/>, and its fresh data key; bound to the store's
    /// <paramref name="archiveId"/> (version 2), or to the name only in a store without one (version 1).
    /// </summary>
    internal static byte[] NewHeader(EncryptionKey key, string objectKey, ObjectMetadata metadata, byte[] dataKey, string? archiveId)
    {
        RandomNumberGenerator.Fill(dataKey);
        var meta = EncodeMetadata(metadata);
        var clear = ClearHeader(archiveId);
        var header = new byte[clear + WrapSize + meta.Length + TagSize];
        (archiveId is null ? Magic : MagicBound).CopyTo(header);
        Convert.FromHexString(key.Id).CopyTo(header, 8);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(16), ChunkSize);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(20), meta.Length);
        if (archiveId is not null) Convert.FromHexString(archiveId).CopyTo(header, FixedHeader);
        var wrap = header.AsSpan(clear, WrapSize);
        key.Wrap(dataKey, WrapAad(header.AsSpan(0, clear), objectKey), wrap[..12], wrap.Slice(12, EncryptionKey.Size), wrap[^TagSize..]);
        using var gcm = new AesGcm(dataKey, TagSize);
        Span<byte> nonce = stackalloc byte[12];
        nonce.Fill(0xff);
        var metaAt = clear + WrapSize;
        gcm.Encrypt(nonce, meta, header.AsSpan(metaAt, meta.Length), header.AsSpan(metaAt + meta.Length, TagSize), "metadata"u8);
        return header;
    }

    /// <summary>
    /// Reads and opens the header of <paramref name="what"/>: its metadata and data key. A key that is not configured
    /// is a configuration error naming the key id (exit 2); a header that does not authenticate, or an object bound to
    /// another archive than the store's <paramref name="archiveId"/> (or to none in a store with one), is corrupt (exit 5).
    /// </summary>
    internal static async Task<(ObjectMetadata Metadata, byte[] DataKey, int ChunkSize)> OpenHeaderAsync(
        Stream input, string objectKey, KeyRing keys, string? archiveId, string what, CancellationToken ct)
    {
        var magic = new byte[Magic.Length];
        await ReadExactlyAsync(input, magic, what, ct).ConfigureAwait(false);
        if (!IsEncrypted(magic)) throw new CorruptObjectException($"{what} is not an encrypted object");
        var bound = magic.AsSpan().SequenceEqual(MagicBound);
        var clear = bound ? FixedHeader + ArchiveIdSize : FixedHeader;
        var fixedPart = new byte[clear + WrapSize];
        magic.CopyTo(fixedPart, 0);
        await ReadExactlyAsync(input, fixedPart.AsMemory(magic.Length), what, ct).ConfigureAwait(false);
        var keyId = Convert.ToHexStringLower(fixedPart.AsSpan(8, 8));
        var chunk = BinaryPrimitives.ReadInt32BigEndian(fixedPart.AsSpan(16));
        var metaLength = BinaryPrimitives.ReadInt32BigEndian(fixedPart.AsSpan(20));
        if (chunk is < 4096 or > 4 << 20 || metaLength is < 0 or > MaxMetadata)
            throw new CorruptObjectException($"{what} has an encryption header that is not CloudArchive's (chunk {chunk}, metadata {metaLength} bytes)");
        var key = keys.Find(keyId) ?? throw new CloudArchiveException(ExitCode.Usage, keys.Keys.Count == 0
            ? $"{what} is encrypted (key {keyId}) and no encryption key is configured: set --encryption-key-file or CLOUDARCHIVE_ENCRYPTION_KEY_FILE"
            : $"{what} is encrypted with key {keyId}, which is not among the configured keys ({string.Join(", ", keys.Keys.Select(k => k.Id))})");
        var objectArchive = bound ? Convert.ToHexStringLower(fixedPart.AsSpan(FixedHeader, ArchiveIdSize)) : null;
        if (objectArchive != archiveId)
            throw new CorruptObjectException(objectArchive is null
                ? $"{what} is bound to no archive, but this store was made with archive id {archiveId}: it was not written into this store (copied in from an older one?)"
                : archiveId is null
                    ? $"{what} belongs to archive {objectArchive}, but this store's marker ({StoreLayout.StoreMarkerKey}) names no archive id: was the marker removed or replaced?"
                    : $"{what} belongs to archive {objectArchive}, not to this store's archive {archiveId}: it was copied in from another store");
        var dataKey = new byte[EncryptionKey.Size];
        var wrap = fixedPart.AsSpan(clear, WrapSize);
        if (!key.TryUnwrap(wrap[..12], wrap.Slice(12, EncryptionKey.Size), wrap[^TagSize..], WrapAad(fixedPart.AsSpan(0, clear), objectKey), dataKey))
            throw new CorruptObjectException(
                $"{what}: its data key does not open with key {keyId}: the header was altered, or the object was copied from another name");
        var meta = new byte[metaLength + TagSize];
        await ReadExactlyAsync(input, meta, what, ct).ConfigureAwait(false);
        var plain = new byte[metaLength];
        try
        {
            using var gcm = new AesGcm(dataKey, TagSize);
            var nonce = new byte[12];
            nonce.AsSpan().Fill(0xff);
            gcm.Decrypt(nonce, meta.AsSpan(0, metaLength), meta.AsSpan(metaLength), plain, "metadata"u8);
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new CorruptObjectException($"{what}: its encrypted metadata does not authenticate (altered)", e);
        }
        return (DecodeMetadata(plain, what), dataKey, chunk);
    }

    private static byte[] WrapAad(ReadOnlySpan<byte> fixedHeader, string objectKey)
    {
        var name = Encoding.UTF8.GetBytes(objectKey);
        var aad = new byte[fixedHeader.Length + name.Length];
        fixedHeader.CopyTo(aad);
        name.CopyTo(aad, fixedHeader.Length);
        return aad;
    }

    private static byte[] EncodeMetadata(ObjectMetadata metadata)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
            foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                w.Write(k);
                w.Write(v);
            }
        return buffer.ToArray();
    }

    private static ObjectMetadata DecodeMetadata(byte[] bytes, string what)
    {
        var result = new ObjectMetadata();
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
            while (r.BaseStream.Position < bytes.Length) result[r.ReadString()] = r.ReadString();
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or FormatException or DecoderFallbackException)
        {
            throw new CorruptObjectException($"{what}: its encrypted metadata is malformed", e);
        }
        return result;
    }

    private static async Task ReadExactlyAsync(Stream input, Memory<byte> buffer, string what, CancellationToken ct)
    {
        try
        {
            await input.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new CorruptObjectException($"{what} ends inside its encryption header (truncated)", e);
        }
    }
}
