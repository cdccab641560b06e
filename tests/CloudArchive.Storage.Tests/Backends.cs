using CloudArchive.Core.Manifest;
using Azure.Storage.Blobs;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Storage;
using CloudArchive.Storage.Azure;
using CloudArchive.Storage.Local;
using CloudArchive.Storage.S3;

namespace CloudArchive.Storage.Tests;

/// <summary>
/// The three real backends the contract runs against: a local directory, the S3-compatible server and
/// Azurite started by infra/ (found through the variables infra/test.sh exports). A missing server fails.
/// Each store gets a fresh prefix, so tests never see each other's objects.
/// </summary>
public static class Backends
{
    /// <summary>Every backend, and the in-memory store the service unit tests use: it must keep the same contract.</summary>
    public static TheoryData<string> All => new() { "local", "s3", "azure", "memory" };

    /// <summary>The backends that keep data outside the process (a test of memory use cannot run on the in-memory store).</summary>
    public static TheoryData<string> Persistent => new() { "local", "s3", "azure" };

    public static IObjectStore Open(string backend, int listPageSize = 0) => backend switch
    {
        // A directory made a store by store-init (a write never makes one).
        "local" => InitLocal(Path.Combine(Scratch, "local-" + Guid.NewGuid().ToString("N"))),
        "s3" => OpenS3(Guid.NewGuid().ToString("N") + "/", listPageSize),
        "azure" => OpenAzure(Guid.NewGuid().ToString("N") + "/", listPageSize),
        "memory" => new InMemoryObjectStore(),
        _ => throw new ArgumentException(backend),
    };

    /// <summary>The same backend kind pointed at an address where nothing listens (or a directory that is not there).</summary>
    public static IObjectStore OpenUnreachable(string backend) => backend switch
    {
        "local" => new LocalObjectStore(Path.Combine(Scratch, "not-mounted-" + Guid.NewGuid().ToString("N"))),
        "s3" => new S3ObjectStore(S3Settings("http://127.0.0.1:9").CreateClient(), Require("CLOUDARCHIVE_TEST_S3_BUCKET"), "x/", S3Settings("http://127.0.0.1:9")),
        "azure" => new AzureBlobObjectStore(new AzureStoreSettings(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            null, null, null).CreateContainerClient("cloudarchive-test"), "x/"),
        "memory" => Unreachable(),
        _ => throw new ArgumentException(backend),
    };

    /// <summary>What store-init does: the marker, the only write that may make a local store.</summary>
    public static LocalObjectStore InitLocal(string dir)
    {
        var store = new LocalObjectStore(dir);
        store.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, new MemoryStream(), new ObjectMetadata(), CancellationToken.None).GetAwaiter().GetResult();
        return store;
    }

    private static InMemoryObjectStore Unreachable()
    {
        var store = new InMemoryObjectStore();
        store.FailNext(int.MaxValue);
        return store;
    }

    public static string Scratch { get; } = Directory.CreateDirectory(Path.Combine(
        Environment.GetEnvironmentVariable("CLOUDARCHIVE_TEST_DIR") is { Length: > 0 } d ? d : "/tmp/cloudarchive-test", "storage-tests")).FullName;

    private static S3ObjectStore OpenS3(string prefix, int pageSize)
    {
        var settings = S3Settings(Require("CLOUDARCHIVE_TEST_S3_ENDPOINT"));
        var store = new S3ObjectStore(settings.CreateClient(), Require("CLOUDARCHIVE_TEST_S3_BUCKET"), prefix, settings);
        return pageSize > 0 ? new S3ObjectStore(settings.CreateClient(), Require("CLOUDARCHIVE_TEST_S3_BUCKET"), prefix, settings) { ListPageSize = pageSize } : store;
    }

    /// <summary>The SDK client and bucket behind a test S3 store, to do what only a killed writer does (start an upload and leave it).</summary>
    public static (Amazon.S3.IAmazonS3 Client, string Bucket) RawS3() =>
        (S3Settings(Require("CLOUDARCHIVE_TEST_S3_ENDPOINT")).CreateClient(), Require("CLOUDARCHIVE_TEST_S3_BUCKET"));

    public static S3ObjectStore OpenS3At(string prefix) => OpenS3(prefix, 0);

    private static S3StoreSettings S3Settings(string endpoint) => new(endpoint, "us-east-1", true, false, null, null, null, Trust(SettingsTable.S3CaFile));

    /// <summary>The test servers speak HTTPS with a self-signed certificate: trusted as the only CA, as --s3-ca-file and --azure-ca-file do.</summary>
    private static TlsTrust Trust(Setting setting) => TlsTrust.Load(Require("CLOUDARCHIVE_TEST_CA_FILE"), setting)!;

    private static AzureBlobObjectStore OpenAzure(string prefix, int pageSize)
    {
        var container = new AzureStoreSettings(Require("CLOUDARCHIVE_TEST_AZURE_CONNECTION_STRING"), null, null, null, Trust(SettingsTable.AzureCaFile))
            .CreateContainerClient("cloudarchive-test");
        container.CreateIfNotExists();
        return pageSize > 0 ? new AzureBlobObjectStore(container, prefix) { ListPageSize = pageSize } : new AzureBlobObjectStore(container, prefix);
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v
            : throw new InvalidOperationException($"{variable} is not set: start the test servers with infra/test.sh (infra/s3-start.sh, infra/azurite-start.sh)");
}
