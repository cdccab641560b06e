namespace CloudArchive.IntegrationTests;

/// <summary>Assertions on how cloudarchive reports a failure: its exit code and one line on stderr.</summary>
public static class Expect
{
    public static void Exit(ProcResult r, int code) =>
        Assert.True(r.ExitCode == code, $"expected exit {code}, got {r}");

    /// <summary>The documented exit code, exactly one "cloudarchive: error: " line on stderr, no stack trace.</summary>
    public static string OneLineError(ProcResult r, int code)
    {
        Exit(r, code);
        var lines = r.StderrLines;
        Assert.True(lines.Length == 1, $"expected exactly one line on stderr, got {lines.Length}:\n{r}");
        Assert.StartsWith("cloudarchive: error: ", lines[0]);
        NoStackTrace(r);
        return lines[0];
    }

    public static void NoStackTrace(ProcResult r) =>
        Assert.False(r.StderrLines.Any(l => l.StartsWith("   at ", StringComparison.Ordinal)), "stack trace without --verbose:\n" + r);
}
