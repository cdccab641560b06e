namespace CloudArchive.IntegrationTests;

/// <summary>The published cloudarchive binary, run the way users run it: as the cluster's owner (postgres when the tests run as root).</summary>
public sealed class Cli(string storeUrl)
{
    public string StoreUrl { get; } = storeUrl;

    public static Cli ForLocalStore(string dir) => new("file://" + dir);

    public Task<ProcResult> RunAsync(params string[] args) => RunAsync(args, null, null);

    public Task<ProcResult> RunAsync(string[] args, IReadOnlyDictionary<string, string?>? env, string? cwd, TimeSpan? timeout = null)
    {
        var vars = new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = StoreUrl, ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "2" };
        if (env is not null) foreach (var (k, v) in env) vars[k] = v;
        return Proc.RunAsync(Proc.Cloudarchive(args, vars, cwd), timeout);
    }

    /// <summary>Runs the binary as root itself, pointed at this store: for the tests of what root may and may not do.</summary>
    public Task<ProcResult> RunAsRootAsync(string[] args, string? cwd = null) =>
        Proc.RunAsync(Proc.CloudarchiveAsRoot(args, new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = StoreUrl, ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "2" }, cwd));

    /// <summary>Runs the binary with exactly <paramref name="env"/> as its CLOUDARCHIVE_* settings (no store unless given).</summary>
    public static Task<ProcResult> RunBareAsync(string[] args, IReadOnlyDictionary<string, string?>? env = null, string? cwd = null, TimeSpan? timeout = null) =>
        Proc.RunAsync(Proc.Cloudarchive(args, env, cwd), timeout);

    public async Task<ProcResult> OkAsync(params string[] args)
    {
        var r = await RunAsync(args);
        Assert.True(r.ExitCode == 0, $"cloudarchive {string.Join(' ', args)}: {r}");
        return r;
    }
}
