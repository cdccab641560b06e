using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Crypto;
using CloudArchive.Core.Storage;
using CloudArchive.Storage.Azure;
using CloudArchive.Storage.Local;
using CloudArchive.Storage.S3;

namespace CloudArchive.Storage;

/// <summary>
/// Builds the backend a store URL names, under client-side encryption (which also refuses encrypted objects when no
/// key is configured) and the bounded retry policy, in that order: a retried write encrypts again, with a new data key.
/// </summary>
public static class StoreFactory
{
    /// <summary>The store URL forms understood, for messages.</summary>
    public const string Schemes = "file:///absolute/path, s3://bucket/prefix or azure://container/prefix";

    /// <param name="setting">A setting by its variable name (the CLI resolves flag, variable, then config file).</param>
    /// <param name="credential">A second store's own SDK credentials (its config file's AWS_* keys); null: the SDK's chain.</param>
    public static IObjectStore Open(string url, RetryPolicy retry, Func<Setting, string?> setting, Func<string, string?>? credential = null)
    {
        var keys = Keys(setting);
        return new RetryingObjectStore(new EncryptedObjectStore(OpenBackend(url, setting, credential), keys), retry);
    }

    /// <summary>The configured archive keys (--encryption-key-file, --encryption-required).</summary>
    public static KeyRing Keys(Func<Setting, string?> setting)
    {
        var keys = KeyRing.FromFiles(setting(SettingsTable.EncryptionKeyFile));
        if (SettingsTable.EncryptionRequired.ParseSwitch(setting(SettingsTable.EncryptionRequired)) == true)
        {
            if (keys.Current is null)
                throw new CloudArchiveException(ExitCode.Usage, "--encryption-required needs --encryption-key-file (CLOUDARCHIVE_ENCRYPTION_KEY_FILE)");
            keys = new KeyRing(keys.Keys) { Required = true };
        }
        return keys;
    }

    /// <summary>
    /// The backend under the retry policy but without the encryption layer: objects byte for byte, as copy moves them.
    /// <paramref name="credential"/> gives a second store's own SDK credentials (AWS_ACCESS_KEY_ID ... of its config file).
    /// </summary>
    public static IObjectStore OpenRaw(string url, RetryPolicy retry, Func<Setting, string?> setting, Func<string, string?>? credential = null) =>
        new RetryingObjectStore(OpenBackend(url, setting, credential), retry);

    /// <summary>The backend alone, without encryption or retries: what the store holds, byte for byte (tests, inspection).</summary>
    /// <param name="credential">SDK credentials by their environment names, for a store whose own differ from the environment's; null: the SDK's chain.</param>
    public static IObjectStore OpenBackend(string url, Func<Setting, string?> setting, Func<string, string?>? credential = null)
    {
        Log.AddSecret(Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY"));
        Log.AddSecret(Environment.GetEnvironmentVariable("AWS_SESSION_TOKEN"));
        var sep = url.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0)
            throw new CloudArchiveException(ExitCode.Usage, $"store '{url}' is not a URL; use {Schemes}");
        var scheme = url[..sep].ToLowerInvariant();
        var rest = url[(sep + 3)..];
        switch (scheme)
        {
            case "file":
                if (ObjectLock.From(setting) is { } locking)
                    throw new CloudArchiveException(ExitCode.Usage, $"store '{url}' cannot hold a {locking}: {SettingsTable.LockDays.Flag} needs an S3 bucket " +
                        "with Object Lock or an Azure container with version-level immutability");
                if (!rest.StartsWith('/') || rest.Length < 2)
                    throw new CloudArchiveException(ExitCode.Usage, $"store '{url}' must name an absolute directory: file:///absolute/path");
                return new LocalObjectStore(Uri.UnescapeDataString(rest));
            case "s3":
            {
                var (bucket, prefix) = SplitContainer(url, rest, "bucket");
                var settings = S3StoreSettings.From(setting);
                return new S3ObjectStore(settings.CreateClient(credential), bucket, prefix, settings);
            }
            case "azure":
            {
                var (container, prefix) = SplitContainer(url, rest, "container");
                var settings = AzureStoreSettings.From(setting);
                return new AzureBlobObjectStore(settings.CreateContainerClient(container), prefix, settings.Trust, settings.Lock);
            }
            default:
                throw new CloudArchiveException(ExitCode.Usage, $"store URL scheme '{scheme}://' is not supported; use {Schemes}");
        }
    }

    /// <summary>"bucket/some/prefix" → ("bucket", "some/prefix/"); every key of the store lives below the prefix.</summary>
    private static (string Container, string Prefix) SplitContainer(string url, string rest, string what)
    {
        var slash = rest.IndexOf('/');
        var container = slash < 0 ? rest : rest[..slash];
        var prefix = slash < 0 ? "" : rest[(slash + 1)..].Trim('/');
        if (container.Length is < 3 or > 63 || !container.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.'))
            throw new CloudArchiveException(ExitCode.Usage, $"store '{url}': '{container}' is not a valid {what} name (3-63 lower-case letters, digits, " +
                $"'-' or '.')");
        if (prefix.Split('/').Any(p => p is "." or ".."))
            throw new CloudArchiveException(ExitCode.Usage, $"store '{url}': the prefix must not contain '.' or '..' segments");
        return (container, prefix.Length == 0 ? "" : prefix + "/");
    }
}
