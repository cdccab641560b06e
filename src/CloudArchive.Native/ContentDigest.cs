namespace CloudArchive.Native;

/// <summary>What a pass over content measured: the SHA-256 and length of the uncompressed bytes.</summary>
public sealed record ContentDigest(string Sha256, long Length);
