namespace CloudArchive.Core.Storage;

/// <summary>One version of a key in a store that keeps versions.</summary>
/// <param name="Id">The store's version id.</param>
/// <param name="DeleteMarker">A delete marker (a plain DELETE on a versioned bucket), not content.</param>
public sealed record ObjectVersion(string Id, bool DeleteMarker = false);

/// <summary>
/// The overwrite rule of a store that keeps versions. A versioned S3 bucket (Object Lock forces versioning) may take a
/// second PUT of an existing key despite If-None-Match: * (Ceph RGW 16.2 does): the key then holds two versions. The
/// archive reads such a key as if its FIRST version were the only one: reads serve the oldest version, and a write that
/// finds afterwards that its version is not the oldest is refused exactly as a refused conditional put (the caller compares
/// checksums: the same content was already archived, other content is a conflict). Concurrent writers all see the same
/// order, so exactly one of them wins, and a second writer's bytes are never served.
/// </summary>
public static class ObjectVersions
{
    /// <summary>The version reads serve: the oldest that is content (delete markers do not count); null when there is none.</summary>
    /// <param name="newestFirst">The key's versions in the store's order, newest first (as S3's ListObjectVersions gives them).</param>
    public static ObjectVersion? Oldest(IReadOnlyList<ObjectVersion> newestFirst) => newestFirst.LastOrDefault(v => !v.DeleteMarker);

    /// <summary>Whether the version just <paramref name="written"/> is the key's first: its write created the object.</summary>
    public static bool Won(IReadOnlyList<ObjectVersion> newestFirst, string written) => Oldest(newestFirst)?.Id == written;
}
