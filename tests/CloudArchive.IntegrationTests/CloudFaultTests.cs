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
        // Long enough for a second attempt even when the SDK's own retries (Azure: two, with backoff) fill the first
        // few seconds on a loaded CI machine: with 3 s the Azure run sometimes gave up after one attempt.
        var env = new Dictionary<string, string?> { ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "8" };

        var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "8"], env, null);
        var fetch = await store.RunAsync(["wal-fetch", "000000010000000000000003", Path.Combine(work, "x"), "--retry-timeout", "8"], env, work);

        Assert.Equal(4, push.ExitCode);
        Assert.Contains("gave up", push.Stderr);
        // Seconds of retries are one warning line and the error, not a line per attempt.
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

    /// <summary>An endpoint whose certificate this host does not trust: not "unreachable, retry for a minute", but one line, at once.</summary>
    [Theory, MemberData(nameof(Clouds))]
    public async Task AnUntrustedCertificateIsAPermanentErrorNotRetried(string kind)
    {
        var work = TestEnv.NewWorkDir("tls-untrusted-" + kind);
        var (cert, key) = (Path.Combine(work, "server.crt"), Path.Combine(work, "server.key"));
        await Proc.CheckAsync(Proc.RunAsync("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"));
        var port = FreePort();
        using var server = System.Diagnostics.Process.Start(Proc.Info("openssl", ["s_server", "-accept", $"127.0.0.1:{port}", "-cert", cert, "-key", key, "-www", "-quiet"]))!;
        try
        {
            await WaitForPortAsync(port);
            var store = TestStore.Create(kind, work, endpoint: $"https://127.0.0.1:{port}");
            var segment = TestSegments.WriteSegment(work, "000000010000000000000006", seed: 6);

            var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "60"], null, null);

            Assert.Equal(4, push.ExitCode);
            Assert.Single(push.StderrLines);
            Assert.Contains($"TLS with https://127.0.0.1:{port} failed", push.Stderr);
            Assert.True(push.Elapsed < TimeSpan.FromSeconds(20), $"a certificate the host does not trust was retried for {push.Elapsed}");
        }
        finally
        {
            server.Kill();
        }
    }

    /// <summary>
    /// PostgreSQL stops a restore_command with SIGTERM at shutdown and reads exit 128+15 as that signal: wal-fetch,
    /// waiting for a store that does not answer, stops at once with 143 and leaves nothing beside %p.
    /// </summary>
    [Fact]
    public async Task SigtermStopsAWaitingFetchAtOnceWithNothingLeftBehind()
    {
        var work = TestEnv.NewWorkDir("sigterm");
        var store = TestStore.Create("s3", work, endpoint: "http://127.0.0.1:9");
        var dest = Path.Combine(work, "pg_wal");
        TestEnv.CreateDirectory(dest);
        using var p = System.Diagnostics.Process.Start(Proc.Cloudarchive(
            ["wal-fetch", "000000010000000000000008", Path.Combine(dest, "RECOVERYXLOG"), "--config", store.ConfigFile, "--retry-timeout", "60"]))!;
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        await Task.Delay(1500);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Proc.CheckAsync(Proc.RunAsync("kill", "-TERM", p.Id.ToString()));
        await p.WaitForExitAsync();

        Assert.True(p.ExitCode == 143, $"exit {p.ExitCode}: {await stderr}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"SIGTERM took {clock.Elapsed} to stop it");
        Assert.Empty(Directory.GetFileSystemEntries(dest));
    }

    /// <summary>A bucket or container that exists but holds no archive under the prefix (a typo, the wrong one) is not "end of archive".</summary>
    [Theory, MemberData(nameof(Clouds))]
    public async Task AWrongPrefixStopsRecoveryInsteadOfEndingIt(string kind)
    {
        var work = TestEnv.NewWorkDir("wrong-prefix-" + kind);
        var store = TestStore.Create(kind, work);
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        await File.WriteAllTextAsync(Path.Combine(dataDir, "recovery.signal"), "");

        var r = await store.RunAsync(["wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG"], null, dataDir);

        Assert.True(r.ExitCode == 200, r.ToString());
        Assert.Contains("holds no CloudArchive archive", r.Stderr);
        Assert.Equal(0, (await store.RunAsync("store-init")).ExitCode);
        Assert.Equal(1, (await store.RunAsync(["wal-fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG"], null, dataDir)).ExitCode);
    }

    [Fact]
    public async Task MissingAwsCredentialsAreOneShortLine()
    {
        var work = TestEnv.NewWorkDir("no-credentials");
        var store = TestStore.Create("s3", work);
        var segment = TestSegments.WriteSegment(work, "000000010000000000000007", seed: 7);
        var home = Path.Combine(work, "home");
        TestEnv.CreateDirectory(home);
        // No keys, no profile, an empty home, and no instance metadata service (nothing to ask on this host).
        var env = new Dictionary<string, string?>
        {
            ["AWS_ACCESS_KEY_ID"] = null, ["AWS_SECRET_ACCESS_KEY"] = null, ["AWS_SESSION_TOKEN"] = null, ["AWS_PROFILE"] = null,
            ["HOME"] = home, ["AWS_EC2_METADATA_DISABLED"] = "true", ["AWS_SHARED_CREDENTIALS_FILE"] = Path.Combine(home, "none"), ["AWS_CONFIG_FILE"] = Path.Combine(home, "none"),
        };

        var push = await store.RunAsync(["wal-push", segment], env, null);

        Assert.Equal(4, push.ExitCode);
        var line = Assert.Single(push.StderrLines);
        Assert.Contains("no AWS credentials", line);
        Assert.True(line.Length < 400, $"{line.Length} characters: {line}");
    }

    private static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static async Task WaitForPortAsync(int port)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var c = new System.Net.Sockets.TcpClient();
                await c.ConnectAsync("127.0.0.1", port);
                return;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new TimeoutException($"openssl s_server did not listen on {port}");
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
