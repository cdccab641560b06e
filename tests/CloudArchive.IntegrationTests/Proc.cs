using System.Diagnostics;

namespace CloudArchive.IntegrationTests;

public sealed record ProcResult(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed)
{
    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>Runs real processes: the published cloudarchive, PostgreSQL's binaries, the infra scripts.</summary>
public static class Proc
{
    public static ProcessStartInfo Info(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = cwd ?? TestEnv.Root,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A developer's own settings must never leak into a test.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("CLOUDARCHIVE_", StringComparison.Ordinal) && k != "CLOUDARCHIVE_TEST_DIR").ToList())
            psi.Environment.Remove(key);
        if (env is not null)
            foreach (var (k, v) in env) psi.Environment[k] = v;
        return psi;
    }

    public static async Task<ProcResult> RunAsync(ProcessStartInfo psi, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + psi.FileName);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{psi.FileName} {string.Join(' ', psi.ArgumentList)} did not finish within {timeout}");
        }
        return new ProcResult(p.ExitCode, await stdout, await stderr, clock.Elapsed);
    }

    public static Task<ProcResult> RunAsync(string file, params string[] args) => RunAsync(Info(file, args));

    /// <summary>
    /// The published cloudarchive as its users run it: as the PostgreSQL cluster's owner (user postgres when the tests run
    /// as root), since it refuses root for every command that writes to a store or a cluster.
    /// </summary>
    public static ProcessStartInfo Cloudarchive(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string? cwd = null) =>
        AsClusterOwner(Info(TestEnv.Binary, args, env, cwd));

    /// <summary>The published cloudarchive as root itself: for the tests of what root may and may not do.</summary>
    public static ProcessStartInfo CloudarchiveAsRoot(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, string? cwd = null)
    {
        Assert.True(TestEnv.IsRoot, "this test runs cloudarchive as root (as CI does): run the tests as root");
        return Info(TestEnv.Binary, args, env, cwd);
    }

    /// <summary><paramref name="psi"/>, started as user postgres when the tests run as root, with postgres's HOME, USER and LOGNAME (as runuser gives them).</summary>
    public static ProcessStartInfo AsClusterOwner(ProcessStartInfo psi)
    {
        if (!TestEnv.IsRoot) return psi;
        psi.UserName = "postgres";
        psi.Environment["HOME"] = TestEnv.Postgres.Value.Home;
        psi.Environment["USER"] = psi.Environment["LOGNAME"] = "postgres";
        return psi;
    }

    /// <summary>Runs a command as the PostgreSQL cluster owner (user postgres when the tests run as root).</summary>
    public static Task<ProcResult> AsPostgresAsync(IEnumerable<string> command, IReadOnlyDictionary<string, string?>? env = null, string? cwd = null, TimeSpan? timeout = null) =>
        RunAsync(Info(TestEnv.Infra("pg-cluster.sh"), ["as-postgres", .. command], env, cwd), timeout);

    public static async Task<ProcResult> CheckAsync(Task<ProcResult> run)
    {
        var r = await run;
        if (r.ExitCode != 0) throw new InvalidOperationException("command failed: " + r);
        return r;
    }
}
