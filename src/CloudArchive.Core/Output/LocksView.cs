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
    /// <summary>With a second store (--store-2): its own report, nested, so the output stays one document.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public VerifyView? SecondStore { get; init; }

    /// <summary>The view of <paramref name="r"/>.</summary>
    public static VerifyView Of(VerifyReport r) => new(r.Objects, r.Bytes, r.Problems, r.Keys, LocksView.Of(r.Locks));

    /// <summary>The view of each store's report: the first's, with the second's nested.</summary>
    public static VerifyView Of(IReadOnlyList<VerifyReport> reports) =>
        Of(reports[0]) with { SecondStore = reports.Count > 1 ? Of(reports[1]) : null };
}
