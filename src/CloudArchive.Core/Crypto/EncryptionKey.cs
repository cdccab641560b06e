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
        Id = Convert.ToHexStringLower(Derive(secret, "cloudarchive key id")[..8]);
        _wrapKey = Derive(secret, "cloudarchive data key wrap");
        _macKey = Derive(secret, "cloudarchive metadata mac");
    }

    /// <summary>
    /// A subkey: the one-step KDF of NIST SP 800-56C with SHA-256, H(counter 1 || secret || label). The secret is 256
    /// random bits, so no stretching is wanted; plain SHA-256 also spares every wal-push and wal-fetch process the first
    /// use of OpenSSL's KDF and MAC machinery (about a millisecond in a process that lives for one segment).
    /// </summary>
    private static byte[] Derive(ReadOnlySpan<byte> secret, string label)
    {
        var input = new byte[4 + secret.Length + label.Length];
        input[3] = 1;
        secret.CopyTo(input.AsSpan(4));
        System.Text.Encoding.ASCII.GetBytes(label, input.AsSpan(4 + secret.Length));
        try
        {
            return SHA256.HashData(input);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(input);
        }
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
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Most often a key that was never mounted (a container's Secret volume): nothing may be written without it.
            throw new CloudArchiveException(ExitCode.Usage, $"encryption key file {path} does not exist: is the volume (or Kubernetes Secret) that " +
                "holds it mounted? Nothing is read or written without it", e);
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
