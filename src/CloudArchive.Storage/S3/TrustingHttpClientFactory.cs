using Amazon.Runtime;

namespace CloudArchive.Storage.S3;

/// <summary>
/// The AWS SDK's HTTP clients when a CA file is configured: TLS trusts only its CAs (see <see cref="TlsTrust"/>). Replacing
/// the SDK's factory replaces what it would have set on its own handler, so the settings CloudArchive's client uses
/// (timeouts, redirects, a configured proxy) are applied here.
/// </summary>
internal sealed class TrustingHttpClientFactory(TlsTrust trust) : HttpClientFactory
{
    /// <inheritdoc />
    public override HttpClient CreateHttpClient(IClientConfig clientConfig)
    {
        // As the SDK's own factory sets up its handler (HttpRequestMessageFactory.CreateManagedHttpClient).
        var handler = trust.CreateHandler();
        handler.EnableMultipleHttp2Connections = true;
        handler.AllowAutoRedirect = clientConfig.AllowAutoRedirect;
        if (clientConfig.ConnectTimeout is { } connect) handler.ConnectTimeout = connect;
        if (clientConfig.MaxConnectionsPerServer is { } connections) handler.MaxConnectionsPerServer = connections;
        if (clientConfig.GetWebProxy() is { } proxy) handler.Proxy = proxy;
        if (handler.Proxy is not null && clientConfig.ProxyCredentials is not null) handler.Proxy.Credentials = clientConfig.ProxyCredentials;
        var client = new HttpClient(handler, disposeHandler: true);
        if (clientConfig.Timeout is { } timeout) client.Timeout = timeout;
        return client;
    }
}
