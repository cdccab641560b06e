namespace CloudArchive.Core.Backup;

/// <summary>
/// The restore_command line a restore writes. PostgreSQL first replaces %f, %p, %r and %% in it, then runs the
/// result with /bin/sh: every argument but the placeholders is quoted for sh (single quotes, a quote as '\''),
/// and every % in it is doubled, so a path with spaces, $, quotes, backticks or % reaches wal-fetch unchanged.
/// </summary>
public static class RestoreCommand
{
    private static readonly HashSet<string> Placeholders = new(StringComparer.Ordinal) { "%f", "%p", "%r" };

    /// <summary>The restore_command line: each argument quoted for sh and its % doubled, the placeholders %f, %p, %r kept.</summary>
    public static string Build(IEnumerable<string> arguments) => string.Join(' ', arguments.Select(Word));

    private static string Word(string argument)
    {
        if (Placeholders.Contains(argument)) return argument;
        var plain = argument.Length > 0 && argument.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or ':' or '=' or ',' or '+' or '@');
        var word = plain ? argument : "'" + argument.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        return word.Replace("%", "%%", StringComparison.Ordinal);
    }
}
