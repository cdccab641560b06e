using Amazon;
using Amazon.Runtime;
using Amazon.S3;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage.S3;

/// <summary>
/// S3 settings, each a flag, a CLOUDARCHIVE_S3_* variable and a config key. Credentials come from the
/// SDK's standard chain only (environment, profile, web identity, instance role).
/// </summary>
/// <param name="Trust">The only CAs trusted for the endpoint (--s3-ca-file); null: the system's.</param>
/// <param name="Lock">The Object Lock every write carries (--lock-days, --lock-mode); null: none.</param>
public sealed record S3StoreSettings(
    string? Endpoint, string? Region, bool ForcePathStyle, bool ChecksumWhenSupported,
    string? StorageClass, string? Sse, string? SseKmsKeyId, TlsTrust? Trust = null, ObjectLock? Lock = null)
{
    /// <summary>Reads the settings (a CA file that cannot be used is a configuration error) and registers the secrets among them for redaction.</summary>
    public static S3StoreSettings From(Func<Setting, string?> setting)
    {
        var endpoint = setting(SettingsTable.S3Endpoint);
        // S3-compatible servers rarely do virtual-host buckets: path style by default with an endpoint.
        var pathStyle = SettingsTable.S3ForcePathStyle.ParseSwitch(setting(SettingsTable.S3ForcePathStyle)) ?? endpoint is not null;
        var checksum = setting(SettingsTable.S3Checksum)?.ToLowerInvariant() switch
        {
            null or "when-required" => false,
            "when-supported" => true,
            var other => throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.S3Checksum.Variable} must be when-required or when-supported, " +
                $"not '{other}'"),
        };
        var sse = setting(SettingsTable.S3Sse);
        if (sse is not null && sse is not ("AES256" or "aws:kms"))
            throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.S3Sse.Variable} must be AES256 or aws:kms, not '{sse}'");
        var kmsKey = setting(SettingsTable.S3SseKmsKeyId);
        if (kmsKey is not null && sse != "aws:kms")
            throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.S3SseKmsKeyId.Variable} needs {SettingsTable.S3Sse.Variable}=aws:kms");
        if (endpoint is not null && !Uri.TryCreate(endpoint, UriKind.Absolute, out _))
            throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.S3Endpoint.Variable} must be a URL such as https://s3.example.com, not " +
                $"'{endpoint}'");
        return new S3StoreSettings(endpoint, setting(SettingsTable.S3Region), pathStyle, checksum,
            setting(SettingsTable.S3StorageClass), sse, kmsKey, TlsTrust.Load(setting(SettingsTable.S3CaFile), SettingsTable.S3CaFile), ObjectLock.From(setting));
    }

    /// <summary>
    /// Whether requests go over TLS (an https endpoint, or AWS's own): then uploads are neither SigV4-signed over their
    /// payload nor run through the SDK's MD5 (both a pass over every byte sent, measured in bench/RESULTS.md). TLS
    /// protects the bytes on their way, and what was stored is proven where it matters, on every read: each object's
    /// SHA-256 (or AES-GCM tag) is checked before anything reaches PostgreSQL or a data directory. Over plain http both
    /// checks stay.
    /// </summary>
    public bool OverTls => Endpoint is null || Endpoint.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>An S3 client configured as the settings say, with few SDK retries.</summary>
    /// <param name="credential">
    /// A store's own credentials by their environment names (a second store's config file): with AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY there, they are used instead of the SDK's chain.
    /// </param>
    public AmazonS3Client CreateClient(Func<string, string?>? credential = null)
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = ForcePathStyle,
            // The SDK's default CRC trailers (aws-chunked) are refused by many S3-compatible servers.
            RequestChecksumCalculation = ChecksumWhenSupported ? RequestChecksumCalculation.WHEN_SUPPORTED : RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ChecksumWhenSupported ? ResponseChecksumValidation.WHEN_SUPPORTED : ResponseChecksumValidation.WHEN_REQUIRED,
            // Few SDK retries: CloudArchive's own bounded policy (--retry-timeout) decides how long to keep trying.
            MaxErrorRetry = 2,
            Timeout = TimeSpan.FromSeconds(120),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            HttpClientFactory = Trust is null ? null : new TrustingHttpClientFactory(Trust),
        };
        if (Endpoint is not null)
        {
            config.ServiceURL = Endpoint;
            config.AuthenticationRegion = Region ?? "us-east-1";
        }
        else
        {
            config.RegionEndpoint = Region is null ? null : RegionEndpoint.GetBySystemName(Region);
        }
        try
        {
            if (credential?.Invoke("AWS_ACCESS_KEY_ID") is { } id && credential("AWS_SECRET_ACCESS_KEY") is { } secret)
            {
                Log.AddSecret(secret);
                var token = credential("AWS_SESSION_TOKEN");
                Log.AddSecret(token);
                AWSCredentials own = token is null ? new BasicAWSCredentials(id, secret) : new SessionAWSCredentials(id, secret, token);
                return new AmazonS3Client(own, config);
            }
            return new AmazonS3Client(config);
        }
        catch (AmazonClientException e)
        {
            throw new CloudArchiveException(ExitCode.Usage, $"cannot set up the S3 client: {e.Message}", e);
        }
    }
}
