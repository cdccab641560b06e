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
