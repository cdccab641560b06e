using CloudArchive.Core.Configuration;
using CloudArchive.Storage;
using CloudArchive.Storage.Azure;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// A fresh store of one backend kind for an end-to-end test, described by a config file the way an
/// operator would write one (store URL, endpoint, and for Azure the connection string). S3 credentials
/// come from the environment (the SDK's standard chain), which the PostgreSQL server inherits. The cloud
/// servers speak HTTPS with a self-signed certificate, trusted through the CA-file settings (verification on).
/// </summary>
public sealed record TestStore(string Kind, string Url, string ConfigFile)
{
    public static TheoryData<string> Kinds => new() { "local", "s3", "azure" };

    /// <param name="endpoint">Another address for the cloud server (a fault proxy in front of it).</param>
    /// <param name="container">Another bucket or container name (one that does not exist).</param>
    /// <param name="azureKey">Another Azure account key (a wrong one).</param>
    /// <param name="localName">The local store's directory name under <paramref name="workDir"/> (default "store").</param>
    /// <param name="caFile">The CA file setting of a cloud store: null, the test servers' CA (none for a local store); "", none (the system's CAs).</param>
    public static TestStore Create(string kind, string workDir, string? endpoint = null, string? container = null, string? azureKey = null,
        string? localName = null, string? caFile = null)
    {
        caFile ??= kind == "local" ? "" : CaFile;
        string[] trust = caFile.Length == 0 ? [] : [$"{(kind == "azure" ? SettingsTable.AzureCaFile : SettingsTable.S3CaFile).Variable}={caFile}"];
        var id = Guid.NewGuid().ToString("N");
        var (url, lines) = kind switch
        {
            "local" => ("file://" + Path.Combine(workDir, localName ?? "store").Replace("%", "%25", StringComparison.Ordinal), Array.Empty<string>()),
            "s3" => ($"s3://{container ?? Require("CLOUDARCHIVE_TEST_S3_BUCKET")}/{id}",
                [$"CLOUDARCHIVE_S3_ENDPOINT={endpoint ?? Require("CLOUDARCHIVE_TEST_S3_ENDPOINT")}", "CLOUDARCHIVE_S3_REGION=us-east-1", .. trust]),
            "azure" => ($"azure://{container ?? "cloudarchive-test"}/{id}",
                [$"AZURE_STORAGE_CONNECTION_STRING={AzureConnectionString(endpoint, azureKey)}", .. trust]),
            _ => throw new ArgumentException(kind),
        };
        if (kind == "local") LocalStore.MakeDirectory(Path.Combine(workDir, localName ?? "store"));
        var config = Path.Combine(workDir, "cloudarchive.env");
        File.WriteAllLines(config, [$"CLOUDARCHIVE_STORE={url}", "CLOUDARCHIVE_RETRY_TIMEOUT=20", .. lines]);
        // Readable by the cluster owner only, like a real config holding a secret.
        File.SetUnixFileMode(config, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (TestEnv.IsRoot) Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", config)).GetAwaiter().GetResult();
        if (kind == "azure") EnsureAzureContainer();
        return new TestStore(kind, url, config);
    }

    /// <summary>The archive_command / restore_command tail that points cloudarchive at this store.</summary>
    public string Args => $"--config {ConfigFile}";

    public Task<ProcResult> RunAsync(params string[] args) => RunAsync(args, null, null);

    public Task<ProcResult> RunAsync(string[] args, IReadOnlyDictionary<string, string?>? env, string? cwd) =>
        Proc.RunAsync(Proc.Cloudarchive([.. args, "--config", ConfigFile], env, cwd));

    public static string S3Endpoint => Require("CLOUDARCHIVE_TEST_S3_ENDPOINT");

    /// <summary>The test servers' certificate (self-signed: its own CA), which infra/tls-cert.sh made.</summary>
    public static string CaFile => Require("CLOUDARCHIVE_TEST_CA_FILE");

    /// <summary>Its private key (a fault proxy in front of a server serves the same certificate).</summary>
    public static string TlsKeyFile => Require("CLOUDARCHIVE_TEST_TLS_KEY_FILE");

    public static string AzureEndpoint
    {
        get
        {
            var part = Require("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING").Split(';').First(p => p.StartsWith("BlobEndpoint=", StringComparison.Ordinal));
            return new Uri(part["BlobEndpoint=".Length..]).GetLeftPart(UriPartial.Authority);
        }
    }

    private static string AzureConnectionString(string? endpoint, string? key)
    {
        var parts = Require("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING").Split(';', StringSplitOptions.RemoveEmptyEntries).Select(p =>
            p.StartsWith("BlobEndpoint=", StringComparison.Ordinal) && endpoint is not null ? $"BlobEndpoint={endpoint}/devstoreaccount1"
            : p.StartsWith("AccountKey=", StringComparison.Ordinal) && key is not null ? "AccountKey=" + key
            : p);
        return string.Join(';', parts) + ";";
    }

    private static void EnsureAzureContainer()
    {
        var conn = Require("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING");
        var trust = TlsTrust.Load(CaFile, SettingsTable.AzureCaFile);
        new AzureStoreSettings(conn, null, null, null, trust).CreateContainerClient("cloudarchive-test").CreateIfNotExists();
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v
            : throw new InvalidOperationException($"{variable} is not set: run the tests with infra/test.sh, which starts the S3 and Azure test servers");
}
