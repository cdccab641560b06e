using CloudArchive.Core.Operations;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Output;

/// <summary>The lock horizon of what status or verify read (docs/reference.md, "JSON output"): no locks when <c>locked</c> is 0.</summary>
public sealed record LocksView(int Locked, DateTimeOffset? Earliest, DateTimeOffset? Latest)
{
    /// <summary>The view of <paramref name="h"/>.</summary>
    public static LocksView Of(LockHorizon h) => new(h.Locked, h.Earliest, h.Latest);
}

/// <summary>verify --json: what verify checked (docs/reference.md, "JSON output").</summary>
public sealed record VerifyView(long Objects, long Bytes, IReadOnlyList<string> Problems, IReadOnlyDictionary<string, long> EncryptionKeys, LocksView Locks)
{
    /// <summary>The view of <paramref name="r"/>.</summary>
    public static VerifyView Of(VerifyReport r) => new(r.Objects, r.Bytes, r.Problems, r.Keys, LocksView.Of(r.Locks));
}
