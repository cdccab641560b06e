namespace CloudArchive.Core.Crypto;

/// <summary>
/// The configured archive keys, in order: new objects are encrypted with the first; an object encrypted with any of
/// them can be read. Empty: nothing is encrypted, and an encrypted object is refused with a line saying so.
/// </summary>
public sealed class KeyRing(IReadOnlyList<EncryptionKey> keys)
{
    /// <summary>No keys: encryption off.</summary>
    public static readonly KeyRing None = new([]);

    /// <summary>
    /// Every object read must be encrypted with one of the keys: a plain object is refused as corrupt instead of being
    /// taken for one written before encryption was turned on (what someone who can write to the store could plant).
    /// </summary>
    public bool Required { get; init; }

    /// <summary>The keys, the writing one first.</summary>
    public IReadOnlyList<EncryptionKey> Keys { get; } = keys;

    /// <summary>The key new objects are encrypted with; null when encryption is off.</summary>
    public EncryptionKey? Current => Keys.Count > 0 ? Keys[0] : null;

    /// <summary>The configured key with this id, if any.</summary>
    public EncryptionKey? Find(string id) => Keys.FirstOrDefault(k => k.Id == id);

    /// <summary>Reads every key file (paths separated by commas, the first one encrypts).</summary>
    public static KeyRing FromFiles(string? paths) =>
        paths is null
            ? None
            : new KeyRing(paths.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(EncryptionKey.FromFile).ToList());
}
