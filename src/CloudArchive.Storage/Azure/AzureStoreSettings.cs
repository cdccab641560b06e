using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using Azure.Storage;
using Azure.Storage.Blobs;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;

namespace CloudArchive.Storage.Azure;

/// <summary>
/// How to reach an Azure storage account: AZURE_STORAGE_CONNECTION_STRING; or CLOUDARCHIVE_AZURE_ACCOUNT_URL
/// with CLOUDARCHIVE_AZURE_ACCOUNT_KEY, CLOUDARCHIVE_AZURE_SAS_TOKEN, or else DefaultAzureCredential
/// (managed identity, workload identity). Secrets are registered for redaction as soon as they are read.
/// </summary>
/// <param name="Trust">The only CAs trusted for the endpoint (--azure-ca-file); null: the system's.</param>
/// <param name="Lock">The immutability policy every write carries (--lock-days, --lock-mode); null: none.</param>
public sealed record AzureStoreSettings(string? ConnectionString, string? AccountUrl, string? AccountKey, string? SasToken, TlsTrust? Trust = null,
    CloudArchive.Core.Storage.ObjectLock? Lock = null)
{
    /// <summary>Reads the settings (a CA file that cannot be used is a configuration error) and registers the secrets among them for redaction.</summary>
    public static AzureStoreSettings From(Func<Setting, string?> setting)
    {
        var s = new AzureStoreSettings(
            setting(SettingsTable.AzureConnectionString),
            setting(SettingsTable.AzureAccountUrl),
            setting(SettingsTable.AzureAccountKey),
            setting(SettingsTable.AzureSasToken),
            TlsTrust.Load(setting(SettingsTable.AzureCaFile), SettingsTable.AzureCaFile), CloudArchive.Core.Storage.ObjectLock.From(setting));
        Log.AddSecret(s.ConnectionString);
        Log.AddSecret(s.AccountKey);
        Log.AddSecret(s.SasToken);
        Log.AddSecret(s.SasToken?.TrimStart('?'));
        if (s.ConnectionString is not null)
            foreach (var part in s.ConnectionString.Split(';'))
                if (part.StartsWith("AccountKey=", StringComparison.OrdinalIgnoreCase)
                    || part.StartsWith("SharedAccessSignature=", StringComparison.OrdinalIgnoreCase))
                    Log.AddSecret(part[(part.IndexOf('=') + 1)..]);
        return s;
    }

    /// <summary>A client of <paramref name="container"/>, authenticated as the settings say, with few SDK retries.</summary>
    public BlobContainerClient CreateContainerClient(string container)
    {
        var options = new BlobClientOptions();
        // Few SDK retries: CloudArchive's own bounded policy (--retry-timeout) decides how long to keep trying.
        options.Retry.MaxRetries = 2;
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(120);
        if (Trust is not null)
        {
            // As Azure.Core sets up its own handler: no redirects or cookies; its NetworkTimeout bounds each try, not HttpClient's.
            var handler = Trust.CreateHandler();
            handler.AllowAutoRedirect = false;
            handler.UseCookies = false;
            options.Transport = new HttpClientTransport(new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan });
        }
        try
        {
            if (ConnectionString is not null)
                return new BlobServiceClient(ConnectionString, options).GetBlobContainerClient(container);
            if (AccountUrl is null)
                throw new CloudArchiveException(ExitCode.Usage,
                    "azure:// store needs AZURE_STORAGE_CONNECTION_STRING or CLOUDARCHIVE_AZURE_ACCOUNT_URL (with an account key, a SAS token, or an " +
                        "Azure identity)");
            var url = new Uri(AccountUrl);
            if (AccountKey is not null)
            {
                var account = url.Host.Split('.')[0];
                return new BlobServiceClient(url, new StorageSharedKeyCredential(account, AccountKey), options).GetBlobContainerClient(container);
            }
            if (SasToken is not null)
                return new BlobServiceClient(url, new AzureSasCredential(SasToken.TrimStart('?')), options).GetBlobContainerClient(container);
            return new BlobServiceClient(url, new DefaultAzureCredential(), options).GetBlobContainerClient(container);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or UriFormatException)
        {
            throw new CloudArchiveException(ExitCode.Usage, "the Azure connection settings do not parse (connection string, account URL or key)", e);
        }
    }
}
