namespace CloudArchive.IntegrationTests;

/// <summary>
/// Where the run's real parts are: the published binary (CLOUDARCHIVE_TEST_BIN) and a scratch directory
/// (CLOUDARCHIVE_TEST_DIR), both set by infra/test.sh. A missing part fails the test; nothing is skipped.
/// </summary>
public static class TestEnv
{
    public static string Binary { get; } = ResolveBinary();
    public static string Root { get; } = Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_DIR") is { Length: > 0 } d ? d : "/tmp/cloudarchive-test";
    public static string RepoRoot { get; } = FindRepoRoot();
    public static string Infra(string script) => Path.Combine(RepoRoot, "infra", script);
    public static bool IsRoot { get; } = Environment.UserName == "root";

    /// <summary>A fresh directory that user postgres can write in (archive_command runs as postgres).</summary>
    public static string NewWorkDir(string name) =>
        SharedDir(Path.Combine(Root, "work"), $"{name}-{Guid.NewGuid():N}"[..Math.Min(name.Length + 9, 60)]);

    /// <summary><paramref name="parent"/>/<paramref name="name"/>, created, that user postgres can write in (a restore target's parent, say).</summary>
    public static string SharedDir(string parent, string name)
    {
        var dir = Path.Combine(parent, name);
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
        return dir;
    }

    /// <summary>
    /// Directory.CreateDirectory, where each directory it creates is given to user postgres when the tests run as root:
    /// cloudarchive runs as the cluster's owner (it refuses root for what writes), so what a test prepares for it to
    /// write in (a pg_wal, a spool, a store's parent) is the owner's, as on a real host.
    /// </summary>
    public static DirectoryInfo CreateDirectory(string path)
    {
        var missing = new List<string>();
        for (var dir = Path.GetFullPath(path); !Directory.Exists(dir) && Path.GetDirectoryName(dir) is { } parent; dir = parent) missing.Add(dir);
        var info = Directory.CreateDirectory(path);
        if (IsRoot)
            foreach (var dir in missing) CloudArchive.Native.Posix.ChangeOwner(dir, Postgres.Value.User, Postgres.Value.Group);
        return info;
    }

    /// <summary>User postgres, the cluster's owner: its ids and its home directory.</summary>
    public static readonly Lazy<(uint User, uint Group, string Home)> Postgres = new(() =>
    {
        var fields = File.ReadLines("/etc/passwd").Select(l => l.Split(':')).First(f => f[0] == "postgres");
        var culture = System.Globalization.CultureInfo.InvariantCulture;
        return (uint.Parse(fields[2], culture), uint.Parse(fields[3], culture), fields[5]);
    });

    private static string ResolveBinary()
    {
        var bin = Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_BIN");
        if (string.IsNullOrEmpty(bin) || !File.Exists(bin))
            throw new InvalidOperationException(
                $"CLOUDARCHIVE_TEST_BIN must name the published cloudarchive binary (got '{bin}'); run the tests with infra/test.sh");
        return bin;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "CloudArchive.sln"))) return dir.FullName;
        throw new InvalidOperationException("cannot find the repository root (CloudArchive.sln) above " + AppContext.BaseDirectory);
    }
}
