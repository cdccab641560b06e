using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CloudArchive.Core.Crypto;

/// <summary>
/// A 256-bit archive key, as <c>key-generate</c> writes it (64 hex digits in a file). It never encrypts content
/// itself: it wraps each object's fresh data key and keys the MAC that replaces a plaintext checksum in clear metadata.
/// Its id (16 hex digits) is derived from it, so an object names the key that opens it without revealing it.
/// </summary>
public sealed class EncryptionKey
{
    /// <summary>Key length in bytes (AES-256).</summary>
    public const int Size = 32;

    private readonly byte[] _wrapKey;
    private readonly byte[] _macKey;

    /// <summary>Derives the key's id, wrapping key and MAC key from <paramref name="secret"/>.</summary>
    public EncryptionKey(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != Size) throw new ArgumentException($"an archive key is {Size} bytes", nameof(secret));
        Id = Convert.ToHexStringLower(HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.ToArray(), 8, info: "cloudarchive key id"u8.ToArray()));
        _wrapKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.ToArray(), Size, info: "cloudarchive data key wrap"u8.ToArray());
        _macKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.ToArray(), Size, info: "cloudarchive metadata mac"u8.ToArray());
    }

    /// <summary>16 hex digits naming this key in object headers, clear metadata and status output.</summary>
    public string Id { get; }

    /// <summary>A new random key in the file format: 64 hex digits and a newline.</summary>
    public static string Generate() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(Size)) + "\n";

    /// <summary>Reads a key file; one line naming the file when it cannot be used (exit 2).</summary>
    public static EncryptionKey FromFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.Usage, $"cannot read encryption key file {path}: {e.Message}");
        }
        var bytes = new byte[Size];
        if (text.Length != 2 * Size || Convert.FromHexString(text, bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written != Size)
            throw new CloudArchiveException(ExitCode.Usage,
                $"encryption key file {path} does not hold a key (64 hex digits, as written by cloudarchive key-generate)");
        try
        {
            return new EncryptionKey(bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>
    /// A MAC of an object's metadata (its plaintext SHA-256, size, system identifier) under this key: what clear
    /// metadata holds instead, so an identical re-push is still recognised and nothing about the plaintext shows.
    /// </summary>
    public string Mac(IEnumerable<KeyValuePair<string, string>> metadata)
    {
        var canonical = new StringBuilder();
        foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            canonical.Append(CultureInfo.InvariantCulture, $"{k.Length}:{k}={v.Length}:{v}\n");
        return Convert.ToHexStringLower(HMACSHA256.HashData(_macKey, Encoding.UTF8.GetBytes(canonical.ToString())));
    }

    /// <summary>Wraps a data key for the object named <paramref name="aad"/>: nonce, ciphertext and tag.</summary>
    internal void Wrap(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> aad, Span<byte> nonce, Span<byte> wrapped, Span<byte> tag)
    {
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(_wrapKey, tag.Length);
        gcm.Encrypt(nonce, dataKey, wrapped, tag, aad);
    }

    /// <summary>Unwraps a data key; false when this key did not wrap it for this object (wrong key, other object, flipped bits).</summary>
    internal bool TryUnwrap(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> wrapped, ReadOnlySpan<byte> tag, ReadOnlySpan<byte> aad, Span<byte> dataKey)
    {
        try
        {
            using var gcm = new AesGcm(_wrapKey, tag.Length);
            gcm.Decrypt(nonce, wrapped, tag, dataKey, aad);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }
}
