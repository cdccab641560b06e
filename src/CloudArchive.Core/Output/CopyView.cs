using CloudArchive.Core.Operations;

namespace CloudArchive.Core.Output;

/// <summary>copy --json: what the run did (docs/reference.md, "JSON output").</summary>
public sealed record CopyView(string From, string To, long Copied, long CopiedBytes, long Skipped, IReadOnlyList<string> Conflicts,
    IReadOnlyList<string> Corrupt, long Unchecked, long NotRecorded)
{
    /// <summary>The view of <paramref name="r"/>.</summary>
    public static CopyView Of(CopyReport r) => new(r.From, r.To, r.Copied, r.CopiedBytes, r.Skipped, r.Conflicts, r.Corrupt, r.Unchecked, r.NotRecorded);
}
