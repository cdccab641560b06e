using CloudArchive.Core;

namespace CloudArchive.Postgres;

/// <summary>
/// libpq's --dbname as the user wrote it: a database name, a conninfo string ("host=... sslmode=verify-full") or a
/// URI (postgresql://...). The PostgreSQL programs CloudArchive starts get all of it (<see cref="ForChild"/>).
/// </summary>
public static class LibpqSettings
{
    /// <summary>Makes any password in the settings unprintable (PGPASSWORD, password=..., postgresql://user:password@...).</summary>
    public static void RegisterSecrets(string? dbName)
    {
        Log.AddSecret(Environment.GetEnvironmentVariable("PGPASSWORD"));
        if (dbName is null) return;
        if (IsUri(dbName))
        {
            if (Uri.TryCreate(dbName, UriKind.Absolute, out var uri) && uri.UserInfo.Split(':', 2) is [_, var pw])
            {
                Log.AddSecret(pw);
                Log.AddSecret(Uri.UnescapeDataString(pw));
            }
            var q = dbName.IndexOf("password=", StringComparison.Ordinal);
            if (q >= 0) Log.AddSecret(Uri.UnescapeDataString(dbName[(q + 9)..].Split('&')[0]));
        }
        else if (dbName.Contains('=', StringComparison.Ordinal))
        {
            foreach (var (k, v) in PgConnectionInfo.ParseConninfo(dbName))
                if (k == "password") Log.AddSecret(v);
        }
    }

    /// <summary>The database a --dbname names; null when it leaves that to PGDATABASE.</summary>
    public static string? DatabaseName(string? dbName)
    {
        if (dbName is null) return Environment.GetEnvironmentVariable("PGDATABASE") is { Length: > 0 } env ? env : null;
        if (IsUri(dbName))
        {
            var path = new Uri(dbName).AbsolutePath.Trim('/');
            return path.Length > 0 ? Uri.UnescapeDataString(path) : DatabaseName(null);
        }
        if (dbName.Contains('=', StringComparison.Ordinal))
            return PgConnectionInfo.ParseConninfo(dbName).LastOrDefault(kv => kv.Item1 == "dbname").Item2 ?? DatabaseName(null);
        return dbName;
    }

    /// <summary>
    /// What a child program is given for <paramref name="dbName"/>: every setting as its --dbname, the password taken out
    /// for its environment (argv is world-readable in /proc; the environment is not).
    /// </summary>
    internal static ChildConnection ForChild(string? dbName)
    {
        if (dbName is null) return new ChildConnection(null, null, ChildConnection.Form.Defaults);
        if (IsUri(dbName)) return WithoutUriPassword(dbName);
        if (!dbName.Contains('=', StringComparison.Ordinal)) return new ChildConnection(dbName, null, ChildConnection.Form.Name);
        string? password = null;
        var kept = new List<string>();
        foreach (var (key, value) in PgConnectionInfo.ParseConninfo(dbName))
        {
            if (key == "password") password = value; // the last one wins, as in libpq
            else kept.Add($"{key}={QuoteValue(value)}");
        }
        return new ChildConnection(string.Join(' ', kept), password, ChildConnection.Form.Conninfo);
    }

    /// <summary>
    /// postgresql://user:password@host/db?password=...: libpq reads the user information up to the first @ before any /,
    /// and a query parameter after it (which wins).
    /// </summary>
    private static ChildConnection WithoutUriPassword(string uri)
    {
        var start = uri.IndexOf("://", StringComparison.Ordinal) + 3;
        string? password = null;
        var rest = uri[start..];
        var at = rest.IndexOfAny(['@', '/']);
        if (at >= 0 && rest[at] == '@')
        {
            var userInfo = rest[..at];
            var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                password = Uri.UnescapeDataString(userInfo[(colon + 1)..]);
                userInfo = userInfo[..colon];
            }
            rest = (userInfo.Length > 0 ? userInfo + "@" : "") + rest[(at + 1)..];
        }
        var query = rest.IndexOf('?', StringComparison.Ordinal);
        if (query >= 0)
        {
            var kept = new List<string>();
            foreach (var pair in rest[(query + 1)..].Split('&'))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                if (eq >= 0 && Uri.UnescapeDataString(pair[..eq]) == "password") password = Uri.UnescapeDataString(pair[(eq + 1)..]);
                else kept.Add(pair);
            }
            rest = rest[..query] + (kept.Count > 0 ? "?" + string.Join('&', kept) : "");
        }
        return new ChildConnection(uri[..start] + rest, password, ChildConnection.Form.Uri);
    }

    /// <summary>A conninfo value in single quotes, with ' and \ escaped as libpq reads them.</summary>
    internal static string QuoteValue(string value) =>
        "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";

    /// <summary>"pg_dump (PostgreSQL) 15.8 (Debian 15.8-1)" → "15.8 (Debian 15.8-1)".</summary>
    internal static string ProgramVersion(string versionOutput)
    {
        var line = versionOutput.Trim();
        var at = line.IndexOf("(PostgreSQL) ", StringComparison.Ordinal);
        return at >= 0 ? line[(at + 13)..] : line;
    }

    private static bool IsUri(string s) =>
        s.StartsWith("postgres://", StringComparison.Ordinal) || s.StartsWith("postgresql://", StringComparison.Ordinal);
}

/// <summary>
/// How a PostgreSQL program CloudArchive starts reaches the server: <see cref="DbName"/> for its --dbname (every setting
/// the user gave, less the password) and <see cref="Password"/> for its PGPASSWORD. libpq's variables (PGHOST,
/// PGSSLMODE, PGPASSFILE...) it inherits (<see cref="PgProgram.StartInfo"/>), and --dbname's settings win over them, as
/// they would for the same program run from a shell.
/// </summary>
internal sealed record ChildConnection(string? DbName, string? Password, ChildConnection.Form Kind)
{
    /// <summary>What --dbname was: absent (libpq's defaults), a database name, a conninfo string or a URI.</summary>
    public enum Form { Defaults, Name, Conninfo, Uri }

    /// <summary>"--dbname=..." when there are settings; libpq's defaults otherwise.</summary>
    public IEnumerable<string> Arguments => DbName is null ? [] : ["--dbname=" + DbName];

    /// <summary>As a connection string, which pg_basebackup's -d needs (a bare database name is not one); null: defaults.</summary>
    public string? ConnectionString => Kind == Form.Name ? "dbname=" + LibpqSettings.QuoteValue(DbName!) : DbName;

    /// <summary>The child's environment additions: PGPASSWORD when --dbname held a password (it wins over the environment's, as in libpq).</summary>
    public Dictionary<string, string> Environment() => Password is null ? [] : new() { ["PGPASSWORD"] = Password };

    /// <summary>The same settings naming another database (libpq: the last dbname wins, in a URI's query too).</summary>
    public ChildConnection WithDatabase(string database) => Kind switch
    {
        Form.Conninfo => this with { DbName = $"{DbName} dbname={LibpqSettings.QuoteValue(database)}" },
        Form.Uri => this with { DbName = DbName + (DbName!.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "dbname=" + Uri.EscapeDataString(database) },
        _ => this with { DbName = "dbname=" + LibpqSettings.QuoteValue(database), Kind = Form.Conninfo },
    };
}
