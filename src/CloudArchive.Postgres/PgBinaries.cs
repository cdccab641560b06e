namespace CloudArchive.Postgres;

/// <summary>Where PostgreSQL's client programs are: CLOUDARCHIVE_PG_BIN, else Debian's directory for the server's major version, else PATH.</summary>
public static class PgBinaries
{
    public static string Find(string program, int serverVersionNum = 0)
    {
        if (Environment.GetEnvironmentVariable("CLOUDARCHIVE_PG_BIN") is { Length: > 0 } dir)
            return Path.Combine(dir, program);
        if (serverVersionNum >= 100000)
        {
            var debian = $"/usr/lib/postgresql/{serverVersionNum / 10000}/bin/{program}";
            if (File.Exists(debian)) return debian;
        }
        foreach (var p in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            if (File.Exists(Path.Combine(p, program))) return Path.Combine(p, program);
        throw new Core.CloudArchiveException(Core.ExitCode.Usage, $"{program} not found: install the PostgreSQL client programs or set CLOUDARCHIVE_PG_BIN");
    }
}
