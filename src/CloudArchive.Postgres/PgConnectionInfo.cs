using CloudArchive.Core;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>
/// libpq's way of naming a server, turned into an Npgsql connection: a conninfo string
/// ("host=/run/postgresql port=5432 dbname=postgres") or URI (postgresql://user@host/db) from --dbname,
/// with PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD and PGPASSFILE filling what it leaves out. TLS follows
/// libpq too, so a CronJob over TCP verifies the server as psql and pg_dump would: PGSSLMODE / sslmode,
/// PGSSLROOTCERT / sslrootcert (default ~/.postgresql/root.crt; "system" for the system's CAs), PGSSLCERT / sslcert
/// and PGSSLKEY / sslkey (default ~/.postgresql/postgresql.crt and .key when present), PGSSLPASSWORD / sslpassword.
/// </summary>
public static class PgConnectionInfo
{
    /// <summary>A data source for <paramref name="dbname"/> (a name, conninfo or URI; null: PGDATABASE), completed from libpq's environment.</summary>
    /// <param name="dbname">A name, conninfo or URI.</param>
    /// <param name="asWritten">
    /// The conninfo is one PostgreSQL wrote (a standby's primary_conninfo, as pg_basebackup -R spells it out): libpq's
    /// settings that change nothing here are passed over (channel_binding, gssencmode, sslsni and the like, unless they
    /// demand something, such as channel_binding=require); a setting given by a person is never passed over.
    /// </param>
    public static NpgsqlDataSource Open(string? dbname, bool asWritten = false)
    {
        var b = Settings(dbname, asWritten);
        try
        {
            var builder = new NpgsqlSlimDataSourceBuilder(b.ConnectionString);
            // Without this the slim builder never speaks TLS, whatever sslmode says.
            builder.EnableTransportSecurity();
            return builder.Build();
        }
        catch (ArgumentException e)
        {
            throw new CloudArchiveException(ExitCode.Usage, $"bad connection settings: {e.Message}", e);
        }
    }

    /// <summary>The connection settings for <paramref name="dbname"/>, completed from libpq's environment, as <see cref="Open"/> uses them.</summary>
    public static NpgsqlConnectionStringBuilder Settings(string? dbname, bool asWritten = false)
    {
        var b = new NpgsqlConnectionStringBuilder
        {
            Host = Env("PGHOST") ?? "/var/run/postgresql",
            Port = int.TryParse(Env("PGPORT"), out var port) ? port : 5432,
            Username = Env("PGUSER") ?? Environment.UserName,
            Database = Env("PGDATABASE") ?? "postgres",
            ApplicationName = "cloudarchive",
            Timeout = 30,
            CommandTimeout = 0,
            // Base backups hold one session for their whole length; never hand it back to a pool.
            Pooling = false,
        };
        if (Env("PGPASSWORD") is { } pw) { b.Password = pw; Log.AddSecret(pw); }
        if (Env("PGPASSFILE") is { } pass) b.Passfile = pass;
        foreach (var (variable, key) in new[]
        {
            ("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert"), ("PGSSLCERT", "sslcert"), ("PGSSLKEY", "sslkey"),
            ("PGSSLPASSWORD", "sslpassword"), ("PGCONNECT_TIMEOUT", "connect_timeout"),
        })
            if (Env(variable) is { } value) Set(b, key, value);
        if (dbname is not null)
        {
            if (dbname.StartsWith("postgres://", StringComparison.Ordinal) || dbname.StartsWith("postgresql://", StringComparison.Ordinal))
                ApplyUri(b, dbname);
            else if (dbname.Contains('='))
                ApplyConninfo(b, dbname, asWritten);
            else
                b.Database = dbname;
        }
        if (b.Password is { } p) Log.AddSecret(p);
        if (b.SslPassword is { } sp) Log.AddSecret(sp);
        ApplyLibpqTlsDefaults(b);
        return b;
    }

    /// <summary>
    /// The conninfo of the server running on <paramref name="dataDirectory"/>: its socket directory and port, as its
    /// postmaster.pid names them (lines 5 and 4); the rest comes from the environment as for any --dbname.
    /// </summary>
    public static string ForDataDirectory(string dataDirectory)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(Path.Combine(dataDirectory, "postmaster.pid"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.PostgresFailed, $"no server runs on {dataDirectory} (postmaster.pid: {e.Message})");
        }
        if (lines.Length < 5 || !int.TryParse(lines[3].Trim(), out var port) || lines[4].Trim() is not { Length: > 0 } socketDir
            || socketDir.Contains('\'') || socketDir.Contains(' '))
            throw new CloudArchiveException(ExitCode.PostgresFailed,
                $"{dataDirectory}/postmaster.pid names no Unix socket to connect to (unix_socket_directories empty?): pass --dbname");
        return $"host={socketDir} port={port}";
    }

    /// <summary>
    /// libpq's files in ~/.postgresql: root.crt is the trusted CA for verify-ca and verify-full unless sslrootcert
    /// names another (or "system": the system's CAs, Npgsql's own default), and postgresql.crt / postgresql.key are the
    /// client certificate when present. A verify mode without any root certificate fails as libpq does.
    /// </summary>
    private static void ApplyLibpqTlsDefaults(NpgsqlConnectionStringBuilder b)
    {
        var dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".postgresql");
        if (b.SslMode is SslMode.VerifyCA or SslMode.VerifyFull)
        {
            if (b.RootCertificate == "system") b.RootCertificate = null;
            else if (b.RootCertificate is null)
            {
                var root = Path.Combine(dir, "root.crt");
                b.RootCertificate = File.Exists(root) ? root
                    : throw new CloudArchiveException(ExitCode.Usage, $"sslmode {b.SslMode} needs a root certificate: {root} does not exist " +
                        "(set PGSSLROOTCERT or sslrootcert, or sslrootcert=system for the system's CAs)");
            }
        }
        if (b.SslCertificate is null && File.Exists(Path.Combine(dir, "postgresql.crt")) && File.Exists(Path.Combine(dir, "postgresql.key")))
        {
            b.SslCertificate = Path.Combine(dir, "postgresql.crt");
            b.SslKey ??= Path.Combine(dir, "postgresql.key");
        }
    }

    /// <summary>Describes where we connect, for messages (never the password).</summary>
    internal static string Describe(NpgsqlDataSource source)
    {
        var b = new NpgsqlConnectionStringBuilder(source.ConnectionString);
        return $"{b.Username}@{b.Host}:{b.Port}/{b.Database}";
    }

    private static void ApplyConninfo(NpgsqlConnectionStringBuilder b, string conninfo, bool asWritten = false)
    {
        foreach (var (key, value) in ParseConninfo(conninfo))
            if (!(asWritten && PassedOver(key, value))) Set(b, key, value);
    }

    /// <summary>libpq settings that pg_basebackup -R writes into primary_conninfo and that ask for nothing beyond the default here.</summary>
    private static bool PassedOver(string key, string value) => key switch
    {
        "channel_binding" or "gssencmode" => value is "prefer" or "disable",
        "sslcompression" or "sslsni" or "sslcertmode" or "ssl_min_protocol_version" or "ssl_max_protocol_version" or "krbsrvname"
            or "gssdelegation" or "target_session_attrs" or "load_balance_hosts" or "tcp_user_timeout" or "gsslib" or "sslcrl" or "sslcrldir"
            or "keepalives" or "keepalives_idle" or "keepalives_interval" or "keepalives_count" or "replication" or "options" => true,
        _ => false,
    };

    private static void ApplyUri(NpgsqlConnectionStringBuilder b, string text)
    {
        var uri = new Uri(text);
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var parts = uri.UserInfo.Split(':', 2);
            b.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2) b.Password = Uri.UnescapeDataString(parts[1]);
        }
        if (!string.IsNullOrEmpty(uri.Host)) b.Host = uri.Host;
        if (uri.Port > 0) b.Port = uri.Port;
        var db = uri.AbsolutePath.Trim('/');
        if (db.Length > 0) b.Database = Uri.UnescapeDataString(db);
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            Set(b, Uri.UnescapeDataString(kv[0]), kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "");
        }
    }

    private static void Set(NpgsqlConnectionStringBuilder b, string key, string value)
    {
        switch (key)
        {
            case "host": b.Host = value; break;
            case "port": b.Port = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            case "user": b.Username = value; break;
            case "dbname": b.Database = value; break;
            case "password": b.Password = value; break;
            case "passfile": b.Passfile = value; break;
            case "connect_timeout": b.Timeout = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            case "sslmode":
                b.SslMode = Enum.TryParse<SslMode>(value.Replace("-", "", StringComparison.Ordinal), ignoreCase: true, out var mode) && Enum.IsDefined(mode)
                    ? mode
                    : throw new CloudArchiveException(ExitCode.Usage,
                        $"sslmode '{value}' is not one of disable, allow, prefer, require, verify-ca, verify-full");
                break;
            case "sslrootcert": b.RootCertificate = value; break;
            case "sslcert": b.SslCertificate = value; break;
            case "sslkey": b.SslKey = value; break;
            case "sslpassword": b.SslPassword = value; break;
            case "application_name": b.ApplicationName = value; break;
            default: throw new CloudArchiveException(ExitCode.Usage, $"connection setting '{key}' is not supported");
        }
    }

    /// <summary>key=value pairs separated by spaces, as libpq reads them: a value single-quoted or not, a backslash escaping the next character.</summary>
    internal static IEnumerable<(string, string)> ParseConninfo(string s)
    {
        var i = 0;
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i >= s.Length) yield break;
            var eq = s.IndexOf('=', i);
            if (eq < 0) throw new CloudArchiveException(ExitCode.Usage, "connection string: expected key=value");
            var key = s[i..eq].Trim();
            i = eq + 1;
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            var value = new System.Text.StringBuilder();
            if (i < s.Length && s[i] == '\'')
            {
                i++;
                while (i < s.Length && s[i] != '\'')
                {
                    if (s[i] == '\\' && i + 1 < s.Length) i++;
                    value.Append(s[i++]);
                }
                if (i >= s.Length) throw new CloudArchiveException(ExitCode.Usage, "connection string: unterminated quoted value");
                i++;
            }
            else
            {
                while (i < s.Length && !char.IsWhiteSpace(s[i]))
                {
                    if (s[i] == '\\' && i + 1 < s.Length) i++;
                    value.Append(s[i++]);
                }
            }
            yield return (key, value.ToString());
        }
    }

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
}
