using static CloudArchive.IntegrationTests.FaultProxy;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// The cloud stores through a faulty network (a proxy in front of the real RGW and Azurite): transient
/// faults are retried within the bounded time, a lost response to a successful write is not a refused
/// overwrite, and permanent faults fail at once with one line naming the store, never a secret.
/// </summary>
public sealed class CloudFaultTests
{
    public static TheoryData<string> Clouds => new() { "s3", "azure" };

    private static string EndpointOf(string kind) => kind == "s3" ? TestStore.S3Endpoint : TestStore.AzureEndpoint;

    [Theory, MemberData(nameof(Clouds))]
    public async Task LostResponseToASuccessfulWriteIsNotARefusedOverwrite(string kind)
    {
        var work = TestEnv.NewWorkDir("lost-" + kind);
        await using var proxy = new FaultProxy(EndpointOf(kind), [Fault.LoseResponse]);
        var store = TestStore.Create(kind, work, endpoint: proxy.Url);
        var segment = TestSegments.WriteSegment(work, "000000010000000000000001", seed: 1);

        var push = await store.RunAsync("wal-push", segment);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Equal(1, proxy.FaultsServed);
        var fetch = await store.RunAsync("wal-fetch", "000000010000000000000001", Path.Combine(work, "back"));
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        Assert.Equal(File.ReadAllBytes(segment), File.ReadAllBytes(Path.Combine(work, "back")));
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task TransientFaultsAreRetriedUntilTheWriteAndReadSucceed(string kind)
    {
        var work = TestEnv.NewWorkDir("flaky-" + kind);
        // More faults in a row than the SDK's own retries absorb: CloudArchive's policy must carry on.
        Fault[] faults = [Fault.Answer503, Fault.Reset, Fault.Answer503, Fault.Reset, Fault.Answer503, Fault.Reset];
        await using var proxy = new FaultProxy(EndpointOf(kind), faults);
        var store = TestStore.Create(kind, work, endpoint: proxy.Url);
        var segment = TestSegments.WriteSegment(work, "000000010000000000000002", seed: 2);

        var push = await store.RunAsync("wal-push", segment);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Equal(faults.Length, proxy.FaultsServed);
        Assert.Contains("retrying", push.Stderr);
        var fetch = await store.RunAsync("wal-fetch", "000000010000000000000002", Path.Combine(work, "back"));
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        Assert.Equal(File.ReadAllBytes(segment), File.ReadAllBytes(Path.Combine(work, "back")));
        Secrets.AssertNoneIn(push.Stdout + push.Stderr + fetch.Stdout + fetch.Stderr);
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task AStoreThatStaysDownFailsWithinTheRetryTimeoutAndStopsRecovery(string kind)
    {
        var work = TestEnv.NewWorkDir("down-" + kind);
        await using var proxy = new FaultProxy(EndpointOf(kind), Enumerable.Repeat(Fault.Answer503, 10_000));
        var store = TestStore.Create(kind, work, endpoint: proxy.Url);
        var segment = TestSegments.WriteSegment(work, "000000010000000000000003", seed: 3);
        var env = new Dictionary<string, string?> { ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "3" };

        var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "3"], env, null);
        var fetch = await store.RunAsync(["wal-fetch", "000000010000000000000003", Path.Combine(work, "x"), "--retry-timeout", "3"], env, work);

        Assert.Equal(4, push.ExitCode);
        Assert.Contains("gave up", push.Stderr);
        // Three seconds of retries are one warning line and the error, not a line per attempt.
        Assert.Single(push.StderrLines, l => l.Contains("retrying", StringComparison.Ordinal));
        Assert.Equal(2, push.StderrLines.Length);
        Assert.True(push.Elapsed < TimeSpan.FromSeconds(60), $"push took {push.Elapsed}");
        Assert.Equal(200, fetch.ExitCode);
        Assert.False(File.Exists(Path.Combine(work, "x")));
        Assert.DoesNotContain("   at ", push.Stderr + fetch.Stderr);
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task WrongCredentialsFailAtOnceWithOneLineAndNoSecret(string kind)
    {
        var work = TestEnv.NewWorkDir("denied-" + kind);
        const string wrongKey = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ==";
        var store = TestStore.Create(kind, work, azureKey: kind == "azure" ? wrongKey : null);
        var env = new Dictionary<string, string?> { ["AWS_SECRET_ACCESS_KEY"] = kind == "s3" ? wrongKey : null };
        if (kind == "azure") env.Remove("AWS_SECRET_ACCESS_KEY");
        var segment = TestSegments.WriteSegment(work, "000000010000000000000004", seed: 4);

        var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "60"], env, null);

        Assert.Equal(4, push.ExitCode);
        Assert.Single(push.StderrLines);
        Assert.Contains("access denied", push.Stderr);
        Assert.Contains(kind == "s3" ? "127.0.0.1" : "127.0.0.1", push.Stderr);
        Assert.True(push.Elapsed < TimeSpan.FromSeconds(30), $"a permanent fault was retried for {push.Elapsed}");
        Assert.DoesNotContain(wrongKey, push.Stdout + push.Stderr);
        Secrets.AssertNoneIn(push.Stdout + push.Stderr);
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task MissingBucketOrContainerFailsAtOnceNamingIt(string kind)
    {
        var work = TestEnv.NewWorkDir("nobucket-" + kind);
        var store = TestStore.Create(kind, work, container: "no-such-place");
        var segment = TestSegments.WriteSegment(work, "000000010000000000000005", seed: 5);

        var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "60"], null, null);
        var fetch = await store.RunAsync(["wal-fetch", "000000010000000000000005", Path.Combine(work, "x"), "--retry-timeout", "60"], null, work);

        Assert.Equal(4, push.ExitCode);
        Assert.Contains("no-such-place", push.Stderr);
        Assert.Contains("does not exist", push.Stderr);
        Assert.True(push.Elapsed < TimeSpan.FromSeconds(30), $"a permanent fault was retried for {push.Elapsed}");
        Assert.Equal(200, fetch.ExitCode);
        Assert.Contains("does not exist", fetch.Stderr);
    }
}
