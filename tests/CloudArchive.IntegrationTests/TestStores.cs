namespace CloudArchive.IntegrationTests;

/// <summary>
/// A fresh store of one backend kind for an end-to-end test, described by a config file the way an
/// operator would write one (store URL, endpoint, and for Azure the connection string). S3 credentials
/// come from the environment (the SDK's standard chain), which the PostgreSQL server inherits.
/// </summary>
public sealed record TestStore(string Kind, string Url, string ConfigFile)
{
    public static TheoryData<string> Kinds => new() { "local", "s3", "azure" };

    public static TestStore Create(string kind, string workDir)
    {
        var id = Guid.NewGuid().ToString("N");
        var (url, lines) = kind switch
        {
            "local" => ("file://" + Path.Combine(workDir, "store"), Array.Empty<string>()),
            "s3" => ($"s3://{Require("CLOUDARCHIVE_TEST_S3_BUCKET")}/{id}",
                [$"CLOUDARCHIVE_S3_ENDPOINT={Require("CLOUDARCHIVE_TEST_S3_ENDPOINT")}", "CLOUDARCHIVE_S3_REGION=us-east-1"]),
            "azure" => ($"azure://cloudarchive-test/{id}",
                [$"AZURE_STORAGE_CONNECTION_STRING={Require("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING")}"]),
            _ => throw new ArgumentException(kind),
        };
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

    public Task<ProcResult> RunAsync(params string[] args) =>
        Proc.RunAsync(Proc.Info(TestEnv.Binary, [.. args, "--config", ConfigFile]));

    private static void EnsureAzureContainer()
    {
        var conn = Require("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING");
        new Azure.Storage.Blobs.BlobServiceClient(conn).GetBlobContainerClient("cloudarchive-test").CreateIfNotExists();
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v
            : throw new InvalidOperationException($"{variable} is not set: run the tests with infra/test.sh, which starts the S3 and Azure test servers");
}
