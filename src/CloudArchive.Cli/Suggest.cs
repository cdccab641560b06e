namespace CloudArchive.Cli;

/// <summary>"Did you mean": the known name nearest to a mistyped one.</summary>
internal static class Suggest
{
    /// <summary>The candidate within two edits of <paramref name="typed"/> (the fewest; the first on a tie); null when none is.</summary>
    public static string? Nearest(string typed, IEnumerable<string> candidates) =>
        candidates.Select(c => (Name: c, Distance: Distance(typed.ToLowerInvariant(), c.ToLowerInvariant()))).Where(c => c.Distance <= 2)
            .OrderBy(c => c.Distance).Select(c => c.Name).FirstOrDefault();

    /// <summary>Edits (insert, delete, replace, swap two neighbours) from one string to the other.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
