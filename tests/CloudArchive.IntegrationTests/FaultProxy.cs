using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// A TCP proxy in front of a real test server that injects network faults into its first connections:
/// a 503 answer, a connection reset, or a request forwarded to the server whose response is then lost.
/// Later connections are forwarded untouched. Bound to 127.0.0.1 only. In front of an https server, untouched
/// connections pass the TLS bytes through; a faulty one is answered by the proxy itself, which serves the server's own
/// certificate (it names 127.0.0.1) and, to lose a response, talks TLS to the server.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    public enum Fault { Answer503, Reset, LoseResponse }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly ConcurrentQueue<Fault> _faults;
    private readonly Uri _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly X509Certificate2? _certificate;
    private int _served;

    public FaultProxy(string targetUrl, IEnumerable<Fault> faults)
    {
        _target = new Uri(targetUrl);
        _faults = new ConcurrentQueue<Fault>(faults);
        if (_target.Scheme == Uri.UriSchemeHttps) _certificate = X509Certificate2.CreateFromPemFile(TestStore.CaFile, TestStore.TlsKeyFile);
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public string Url => $"{_target.Scheme}://127.0.0.1:{Port}";
    public int FaultsServed => Volatile.Read(ref _served);

    private volatile bool _down;
    private CancellationTokenSource _open = new();

    /// <summary>
    /// The store down (true): every open connection is cut and every new one is reset, until it is set back to false. For
    /// an outage of a given length rather than a number of failed requests.
    /// </summary>
    public bool Down
    {
        get => _down;
        set
        {
            _down = value;
            if (value) Interlocked.Exchange(ref _open, new CancellationTokenSource()).Cancel();
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using var _ = client;
        var ct = _stop.Token;
        try
        {
            Stream stream = client.GetStream();
            var fault = Fault.Reset;
            if (!_down && !_faults.TryDequeue(out fault))
            {
                using var open = CancellationTokenSource.CreateLinkedTokenSource(ct, _open.Token);
                await ForwardAsync(stream, loseResponse: false, open.Token);
                return;
            }
            Interlocked.Increment(ref _served);
            if (_certificate is not null)
            {
                var tls = new SslStream(stream);
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, ct);
                stream = tls;
            }
            switch (fault)
            {
                case Fault.Answer503:
                    await ReadRequestHeadAsync(stream, ct);
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), ct);
                    break;
                case Fault.Reset:
                    await ReadRequestHeadAsync(stream, ct);
                    client.Client.LingerState = new LingerOption(true, 0);
                    break;
                case Fault.LoseResponse:
                    await ForwardAsync(stream, loseResponse: true, ct);
                    client.Client.LingerState = new LingerOption(true, 0);
                    break;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException
            or System.Security.Authentication.AuthenticationException)
        {
        }
    }

    private async Task ForwardAsync(Stream client, bool loseResponse, CancellationToken ct)
    {
        using var server = new TcpClient();
        await server.ConnectAsync(_target.Host, _target.Port, ct);
        Stream upstream = server.GetStream();
        if (client is SslStream)
        {
            // The proxy ended the client's TLS (to lose the response after the request): its own TLS to the server.
            var tls = new SslStream(upstream);
            var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.Add(_certificate!);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = _target.Host, CertificateChainPolicy = policy }, ct);
            upstream = tls;
        }
        var up = client.CopyToAsync(upstream, ct);
        if (!loseResponse)
        {
            var down = upstream.CopyToAsync(client, ct);
            await Task.WhenAny(up, down);
            return;
        }
        // Let the whole request reach the server, then swallow its answer: the client sees a dropped
        // connection although the server did the work.
        var buffer = new byte[64 * 1024];
        if (await upstream.ReadAsync(buffer, ct) > 0)
            await Task.Delay(200, ct);
    }

    private static async Task ReadRequestHeadAsync(Stream stream, CancellationToken ct)
    {
        var seen = new StringBuilder();
        var buffer = new byte[4096];
        while (!seen.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, ct);
            if (n == 0) return;
            seen.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _stop.Dispose();
        _certificate?.Dispose();
    }
}
