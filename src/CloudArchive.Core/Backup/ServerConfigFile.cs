using System.Text.RegularExpressions;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The few settings a drill takes from a backup's own postgresql.conf and postgresql.auto.conf: how its data reads
/// (time zone, date and interval style, number, money and time formats, text search configuration), which a check
/// may depend on and which load or run nothing. Each value is taken only when it is plain (letters, digits and
/// <c>_ . , / + -</c> and spaces, no <c>..</c>); include directives and every other setting are ignored.
/// </summary>
public static partial class ServerConfigFile
{
    /// <summary>The settings taken, by their lower-case names.</summary>
    public static readonly IReadOnlyList<string> Taken =
        ["timezone", "datestyle", "intervalstyle", "lc_monetary", "lc_numeric", "lc_time", "default_text_search_config"];

    /// <summary>The taken settings of the files' texts, in order (a later one wins), as lines to write into a configuration.</summary>
    public static IReadOnlyList<string> TakenSettings(params string[] texts)
    {
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var text in texts)
            foreach (var line in text.Split('\n'))
            {
                var m = Setting().Match(line);
                if (!m.Success) continue;
                var name = m.Groups["name"].Value.ToLowerInvariant();
                var value = m.Groups["quoted"].Success ? m.Groups["quoted"].Value.Replace("''", "'", StringComparison.Ordinal) : m.Groups["bare"].Value;
                if (Taken.Contains(name) && value.Length <= 64 && PlainValue().IsMatch(value) && !value.Contains("..", StringComparison.Ordinal))
                    found[name] = value;
            }
        return [.. Taken.Where(found.ContainsKey).Select(n => $"{n} = {BackupRestorer.Quote(found[n])}")];
    }

    [GeneratedRegex(@"^\s*(?<name>[A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(?:'(?<quoted>(?:[^'\\]|'')*)'|(?<bare>[^\s'#\\]+))\s*(?:#.*)?$")]
    private static partial Regex Setting();

    [GeneratedRegex(@"^[A-Za-z0-9_.,/+ -]*$")]
    private static partial Regex PlainValue();
}
