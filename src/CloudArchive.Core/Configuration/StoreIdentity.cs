namespace CloudArchive.Core.Configuration;

/// <summary>What names a store for a spool's IDENTITY file.</summary>
public static class StoreIdentity
{
    /// <summary>
    /// The store URL and the non-secret settings that say which server or account it is on (of a connection
    /// string only its account name and endpoint). Only a SHA-256 of this reaches the disk.
    /// </summary>
    public static string Of(Func<Setting, string?> get)
    {
        var azure = get(SettingsTable.AzureConnectionString) is { } conn
            ? string.Join(';', conn.Split(';').Where(p => p.StartsWith("AccountName=", StringComparison.OrdinalIgnoreCase)
                || p.StartsWith("BlobEndpoint=", StringComparison.OrdinalIgnoreCase)))
            : "";
        return string.Join('\n',
            "store=" + get(SettingsTable.Store),
            "s3-endpoint=" + get(SettingsTable.S3Endpoint),
            "azure-account-url=" + get(SettingsTable.AzureAccountUrl),
            "azure-connection=" + azure,
            "fallback-store=" + get(SettingsTable.FallbackStore),
            "fallback-config=" + get(SettingsTable.FallbackConfig));
    }
}
