using CloudArchive.Core;
using CloudArchive.Core.Storage;
using CloudArchive.Storage.Local;

namespace CloudArchive.Storage;

/// <summary>Builds the backend a store URL names, wrapped in the bounded retry policy.</summary>
public static class StoreFactory
{
    public const string Schemes = "file:///absolute/path";

    public static IObjectStore Open(string url, RetryPolicy retry)
    {
        IObjectStore store = OpenBackend(url);
        return new RetryingObjectStore(store, retry);
    }

    private static IObjectStore OpenBackend(string url)
    {
        var colon = url.IndexOf("://", StringComparison.Ordinal);
        if (colon <= 0)
            throw new CloudArchiveException(ExitCode.Usage, $"store '{url}' is not a URL; use {Schemes}");
        var scheme = url[..colon].ToLowerInvariant();
        var rest = url[(colon + 3)..];
        switch (scheme)
        {
            case "file":
                if (!rest.StartsWith('/') || rest.Length < 2)
                    throw new CloudArchiveException(ExitCode.Usage, $"store '{url}' must name an absolute directory: file:///absolute/path");
                return new LocalObjectStore(Uri.UnescapeDataString(rest));
            default:
                throw new CloudArchiveException(ExitCode.Usage, $"store URL scheme '{scheme}://' is not supported; use {Schemes}");
        }
    }
}
