using System.Globalization;

namespace CloudArchive.Core;

/// <summary>
/// The PostgreSQL majors CloudArchive supports, and the rule for its client programs: pg_dump, pg_dumpall and
/// pg_basebackup refuse servers newer than themselves, and pg_restore cannot read archives of a newer pg_dump.
/// </summary>
public static class PostgresVersion
{
    /// <summary>The oldest major CloudArchive works with; older servers are refused (exit 9).</summary>
    public const int OldestSupported = 13;

    /// <summary>The newest major the CI matrix proves; a newer server is used with a warning, not refused.</summary>
    public const int NewestTested = 18;

    /// <summary>The major of a server_version_num: 170002 → 17, 90624 → 9.</summary>
    public static int Major(int versionNum) => versionNum / 10000;

    /// <summary>server_version_num as people write it: 170002 → "17.2", 90624 → "9.6.24".</summary>
    public static string Display(int versionNum) => versionNum >= 100000
        ? string.Create(CultureInfo.InvariantCulture, $"{versionNum / 10000}.{versionNum % 10000}")
        : string.Create(CultureInfo.InvariantCulture, $"{versionNum / 10000}.{versionNum / 100 % 100}.{versionNum % 100}");

    /// <summary>
    /// Refuses a server older than 13 (exit 9, one line). Returns a warning for one newer than the newest tested
    /// major: its backup functions and data directory are very likely those of the last one, and refusing would
    /// leave a freshly upgraded cluster without backups until a new CloudArchive ships; null otherwise.
    /// </summary>
    public static string? RequireSupported(int versionNum)
    {
        if (versionNum < OldestSupported * 10000)
            throw new CloudArchiveException(ExitCode.PostgresFailed,
                $"PostgreSQL {Display(versionNum)} is not supported: CloudArchive supports {OldestSupported} to {NewestTested}");
        return Major(versionNum) > NewestTested
            ? $"PostgreSQL {Display(versionNum)} is newer than the versions CloudArchive is tested with "
                + $"({OldestSupported} to {NewestTested}): continuing; restore a backup once to prove it"
            : null;
    }

    /// <summary>The major of a program's version ("15.14 (Debian 15.14-0+deb12u1)", "18beta1", "9.6.24"); null when unreadable.</summary>
    public static int? ProgramMajor(string version)
    {
        var digits = new string(version.TrimStart().TakeWhile(char.IsAsciiDigit).ToArray());
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var major) && major > 0 ? major : null;
    }
}

/// <summary>A client program found on this host, with the version its --version printed.</summary>
public sealed record ClientProgram(string Path, string Version, int Major)
{
    /// <summary>"15.14" of "15.14 (Debian 15.14-0+deb12u1)", for messages.</summary>
    public string ShortVersion => Version.Split(' ')[0];
}

/// <summary>
/// What a client program must be able to do: <see cref="What"/> completes "pg_dump 15.14 cannot ..." (e.g. "dump
/// PostgreSQL 17.2"); <see cref="MinMajor"/> is the oldest major that can (0: any).
/// </summary>
public sealed record ClientNeed(string Program, int MinMajor, string What)
{
    /// <summary>Any version of the program will do (pg_config, a psql that only reads facts).</summary>
    public static ClientNeed Any(string program) => new(program, 0, "");

    /// <summary>pg_dump, pg_dumpall and pg_basebackup: at least the server's major.</summary>
    public static ClientNeed ForServer(string program, string verb, int serverVersionNum) =>
        new(program, PostgresVersion.Major(serverVersionNum), $"{verb} PostgreSQL {PostgresVersion.Display(serverVersionNum)}");

    /// <summary>
    /// The one choice of a client program. A configured directory (--pg-bin) is the operator's word: its program is
    /// used or refused, never passed over. Otherwise the newest of <paramref name="found"/> that is new enough (on a
    /// tie, the first found). Refusals are exit 9 naming what was found and what to install.
    /// </summary>
    public ClientProgram Choose(string? configuredDir, ClientProgram? configured, IReadOnlyList<ClientProgram> found)
    {
        var package = MinMajor > 0 ? $"postgresql-client-{MinMajor}" : "postgresql-client";
        if (configuredDir is not null)
        {
            if (configured is null)
                throw new CloudArchiveException(ExitCode.PostgresFailed,
                    $"{Program} not found in {configuredDir} (--pg-bin / CLOUDARCHIVE_PG_BIN){Needing()}: set --pg-bin to "
                        + $"the bin directory of {Wanted()} ({package})");
            if (configured.Major < MinMajor)
                throw new CloudArchiveException(ExitCode.PostgresFailed,
                    $"{Program} {configured.ShortVersion} in {configuredDir} (--pg-bin / CLOUDARCHIVE_PG_BIN) cannot "
                        + $"{What}: set --pg-bin to the bin directory of {Wanted()} ({package})");
            return configured;
        }
        ClientProgram? best = null;
        foreach (var p in found)
            if (p.Major >= MinMajor && (best is null || p.Major > best.Major)) best = p;
        if (best is not null) return best;
        if (found.Count == 0)
            throw new CloudArchiveException(ExitCode.PostgresFailed,
                $"{Program} not found (PATH, /usr/lib/postgresql/*/bin, pg_config --bindir){Needing()}: install "
                    + $"{package} or set --pg-bin to its bin directory");
        var newest = found.MaxBy(p => p.Major)!;
        throw new CloudArchiveException(ExitCode.PostgresFailed,
            $"{Program} {newest.ShortVersion} ({newest.Path}, the newest found) cannot {What}: install {package} or set --pg-bin to its bin directory");
    }

    private string Needing() => What.Length > 0 ? $" to {What}" : "";

    private string Wanted() => MinMajor > 0 ? $"PostgreSQL {MinMajor} or later" : "PostgreSQL";
}
