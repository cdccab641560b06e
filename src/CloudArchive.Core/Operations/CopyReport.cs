namespace CloudArchive.Core.Operations;

/// <summary>What copy did.</summary>
/// <param name="From">The store copied from.</param>
/// <param name="To">The store brought up to date.</param>
/// <param name="Copied">Objects written to <paramref name="To"/>.</param>
/// <param name="CopiedBytes">Their stored bytes.</param>
/// <param name="Skipped">Objects <paramref name="To"/> already held with the same content.</param>
/// <param name="Conflicts">Keys <paramref name="To"/> holds with other content than <paramref name="From"/>: left as they are, one line each.</param>
/// <param name="Corrupt">Objects of <paramref name="From"/> that failed their check (not copied), or that read back wrong: one line each.</param>
/// <param name="Unchecked">Encrypted objects copied without a check of their content: no key for them was given.</param>
/// <param name="NotRecorded">Objects no record of <paramref name="From"/> lists yet (a backup or push in progress, or abandoned): left for a later run.</param>
public sealed record CopyReport(string From, string To, long Copied, long CopiedBytes, long Skipped, IReadOnlyList<string> Conflicts,
    IReadOnlyList<string> Corrupt, long Unchecked, long NotRecorded);
