namespace CloudArchive.IntegrationTests;

/// <summary>
/// The cloud test servers speak HTTPS and certificates are always verified. The CA-file settings (--s3-ca-file,
/// --azure-ca-file) decide which CAs are trusted: one that does not vouch for the server fails as an untrusted certificate,
/// at once and never as "not in the archive"; one that cannot be read is a configuration error; one that does vouch for it
/// is enough, without any system CA.
/// </summary>
public sealed class TlsTests
{
    public static TheoryData<string> Clouds => new() { "s3", "azure" };

    /// <summary>A self-signed certificate for 127.0.0.1 that did not issue the test servers' certificate.</summary>
    private static async Task<string> OtherCaAsync(string work)
    {
        var (cert, key) = (Path.Combine(work, "other-ca.pem"), Path.Combine(work, "other-ca.key"));
        await Proc.CheckAsync(Proc.RunAsync("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1"));
        File.SetUnixFileMode(cert, (UnixFileMode)0b110_100_100);
        return cert;
    }

    /// <summary>A data directory in archive recovery, where restore_command runs.</summary>
    private static string RecoveringDataDirectory(string work)
    {
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        File.WriteAllText(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        File.WriteAllText(Path.Combine(dataDir, "recovery.signal"), "");
        return dataDir;
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task ACaFileThatDoesNotVouchForTheServerFailsAtOnceAndNeverReadsAsAbsent(string kind)
    {
        var work = TestEnv.NewWorkDir("tls-wrong-ca-" + kind);
        var wrong = await OtherCaAsync(work);
        var store = TestStore.Create(kind, work, caFile: wrong);
        const string name = "000000010000000000000001";
        var segment = TestSegments.WriteSegment(work, name, seed: 1);
        var dataDir = RecoveringDataDirectory(work);

        var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "60"], null, null);
        var fetchInRecovery = await store.RunAsync(["wal-fetch", name, "pg_wal/RECOVERYXLOG", "--retry-timeout", "60"], null, dataDir);

        var line = Expect.OneLineError(push, 4);
        Assert.Contains("TLS with https://127.0.0.1:", line);
        Assert.Contains("UntrustedRoot", line);
        Assert.Contains(wrong, line);
        Assert.True(push.Elapsed < TimeSpan.FromSeconds(20), $"an untrusted certificate was retried for {push.Elapsed}");
        // restore_command: recovery stops (200) instead of ending at "file not in the archive" (1).
        Expect.Exit(fetchInRecovery, 200);
        Assert.Contains("UntrustedRoot", fetchInRecovery.Stderr);
        Expect.NoStackTrace(fetchInRecovery);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
        Secrets.AssertNoneIn(push.Stderr + fetchInRecovery.Stderr);
    }

    /// <summary>The certificate names 127.0.0.1; the same server reached as localhost is refused although its CA is trusted.</summary>
    [Theory, MemberData(nameof(Clouds))]
    public async Task TheCaFileDoesNotLiftTheHostNameCheck(string kind)
    {
        var work = TestEnv.NewWorkDir("tls-host-" + kind);
        var endpoint = (kind == "s3" ? TestStore.S3Endpoint : TestStore.AzureEndpoint).Replace("127.0.0.1", "localhost", StringComparison.Ordinal);
        var store = TestStore.Create(kind, work, endpoint: endpoint);
        var segment = TestSegments.WriteSegment(work, "000000010000000000000004", seed: 4);

        var push = await store.RunAsync(["wal-push", segment, "--retry-timeout", "60"], null, null);

        var line = Expect.OneLineError(push, 4);
        Assert.Contains($"TLS with {endpoint} failed", line);
        Assert.Contains("RemoteCertificateNameMismatch", line);
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task ACaFileThatIsMissingOrHoldsNoCertificateIsAConfigurationError(string kind)
    {
        var work = TestEnv.NewWorkDir("tls-bad-ca-" + kind);
        var segment = TestSegments.WriteSegment(work, "000000010000000000000002", seed: 2);
        var missing = Path.Combine(work, "no-such-ca.pem");
        var notPem = Path.Combine(work, "not-a-certificate.pem");
        await File.WriteAllTextAsync(notPem, "this is not a certificate\n");
        var variable = kind == "s3" ? "CLOUDARCHIVE_S3_CA_FILE" : "CLOUDARCHIVE_AZURE_CA_FILE";

        var pushMissing = await TestStore.Create(kind, work, caFile: missing).RunAsync("wal-push", segment);
        var fetchMissing = await TestStore.Create(kind, work, caFile: missing)
            .RunAsync(["wal-fetch", "000000010000000000000002", Path.Combine(work, "x")], null, work);
        var pushNotPem = await TestStore.Create(kind, work, caFile: notPem).RunAsync("wal-push", segment);

        var line = Expect.OneLineError(pushMissing, 2);
        Assert.Contains($"{variable}: cannot read the CA file {missing}", line);
        Assert.Contains(variable, Expect.OneLineError(fetchMissing, 2));
        Assert.Contains($"{variable}: the CA file {notPem} holds no PEM certificate", Expect.OneLineError(pushNotPem, 2));
    }

    [Theory, MemberData(nameof(Clouds))]
    public async Task ACaBundleThatVouchesForTheServerIsEnoughWithoutAnySystemCa(string kind)
    {
        var work = TestEnv.NewWorkDir("tls-bundle-" + kind);
        // A bundle: another CA first, then the one that issued the servers' certificate.
        var bundle = Path.Combine(work, "bundle.pem");
        await File.WriteAllTextAsync(bundle, await File.ReadAllTextAsync(await OtherCaAsync(work)) + await File.ReadAllTextAsync(TestStore.CaFile));
        File.SetUnixFileMode(bundle, (UnixFileMode)0b110_100_100);
        // No system CA at all: OpenSSL's (and .NET's) locations name nothing.
        var noSystemCas = new Dictionary<string, string?> { ["SSL_CERT_FILE"] = Path.Combine(work, "none.pem"), ["SSL_CERT_DIR"] = Path.Combine(work, "none") };
        var store = TestStore.Create(kind, work, caFile: bundle);
        const string name = "000000010000000000000003";
        var segment = TestSegments.WriteSegment(work, name, seed: 3);

        var push = await store.RunAsync(["wal-push", segment], noSystemCas, null);
        var fetch = await store.RunAsync(["wal-fetch", name, Path.Combine(work, "back")], noSystemCas, work);

        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        Assert.Equal(File.ReadAllBytes(segment), File.ReadAllBytes(Path.Combine(work, "back")));

        // Without the setting the system's CAs decide: none trusts the server; SSL_CERT_FILE naming its CA does.
        var other = TestEnv.NewWorkDir("tls-system-" + kind);
        var systemStore = TestStore.Create(kind, other, caFile: "");
        var untrusted = await systemStore.RunAsync(["wal-push", segment, "--retry-timeout", "60"], noSystemCas, null);
        var viaSslCertFile = await systemStore.RunAsync(["wal-push", segment], new Dictionary<string, string?> { ["SSL_CERT_FILE"] = TestStore.CaFile }, null);

        var line = Expect.OneLineError(untrusted, 4);
        Assert.Contains("a CA this host trusts (SSL_CERT_FILE, /etc/ssl/certs)", line);
        Assert.True(viaSslCertFile.ExitCode == 0, viaSslCertFile.ToString());
    }
}
