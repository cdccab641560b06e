using CloudArchive.Storage.S3;

namespace CloudArchive.Storage.Tests;

/// <summary>Uploads skip the SDK's payload signature and MD5 only where TLS protects the bytes on their way.</summary>
public sealed class S3StoreSettingsTests
{
    [Theory]
    [InlineData(null, true)]                              // AWS itself: always https
    [InlineData("https://s3.example.com", true)]
    [InlineData("HTTPS://127.0.0.1:7443", true)]
    [InlineData("http://127.0.0.1:7480", false)]          // plain http keeps both checks
    public void OnlyTlsDropsThePayloadChecks(string? endpoint, bool overTls) =>
        Assert.Equal(overTls, new S3StoreSettings(endpoint, "us-east-1", true, false, null, null, null).OverTls);
}
