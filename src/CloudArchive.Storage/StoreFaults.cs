using System.Net.Sockets;
using System.Security.Authentication;
using CloudArchive.Core;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage;

/// <summary>
/// What every cloud backend shares about failures: the order faults are read in, the transport faults all SDKs
/// raise alike, and what a refused conditional put means. A backend adds only its SDK's own errors.
/// </summary>
internal static class StoreFaults
{
    /// <summary>
    /// A fault as a one-line store error (transient ones marked for the retry policy), or null to let it pass:
    /// a cancellation the caller asked for, CloudArchive's own errors, or what nobody recognises (a bug).
    /// Order: TLS (permanent), then the SDK's own errors (<paramref name="sdk"/>), then the transport (transient).
    /// </summary>
    /// <param name="trust">The CA files the backend trusts instead of the system's (see <see cref="TlsTrust"/>), or null.</param>
    public static StoreUnavailableException? Translate(Exception e, string what, string endpoint, TlsTrust? trust,
        Func<Exception, StoreUnavailableException?> sdk)
    {
        if (e is OperationCanceledException oce && oce.CancellationToken.IsCancellationRequested) return null;
        if (e is CloudArchiveException) return null;
        if (Tls(e, what, endpoint, trust) is { } tls) return tls;
        if (sdk(e) is { } translated) return translated;
        return IsTransport(e) ? new StoreUnavailableException($"{what}: cannot reach {endpoint} ({Innermost(e).Message})", true, e) : null;
    }

    /// <summary>The network failed under the request (or an SDK wrapped such a failure): worth retrying.</summary>
    public static bool IsTransport(Exception e) =>
        e is AggregateException or HttpRequestException or IOException or SocketException or TimeoutException or OperationCanceledException
        || e.InnerException is HttpRequestException or IOException or SocketException;

    /// <summary>
    /// The outcome of a conditional put the store refused (S3 412, Azure 409/412): the object exists. It is also what
    /// a retry sees after a first attempt whose response was lost, so the caller compares the existing object's
    /// checksum; an object that cannot be read back is a transient fault, never "created".
    /// </summary>
    public static async Task<PutOutcome> ExistingAsync(IObjectStore store, string key, CancellationToken ct) =>
        new PutOutcome.AlreadyExists(await store.GetInfoAsync(key, ct).ConfigureAwait(false)
            ?? throw new StoreUnavailableException($"{store.Description} refused {key} as existing, but it cannot be read back", transient: true));

    /// <summary>
    /// A TLS handshake that failed (an untrusted or mismatched certificate, no common protocol) does not heal by
    /// retrying for a minute: it is a permanent store error naming the endpoint, the reason and what was trusted, or null.
    /// </summary>
    private static StoreUnavailableException? Tls(Exception e, string what, string endpoint, TlsTrust? trust)
    {
        var trusted = trust is null ? "a CA this host trusts (SSL_CERT_FILE, /etc/ssl/certs)" : $"a CA of {trust.Files} ({trust.Setting.Variable})";
        for (var inner = e; inner is not null; inner = inner.InnerException)
            if (inner is AuthenticationException tls)
                return new StoreUnavailableException(
                    $"{what}: TLS with {endpoint} failed ({tls.Message.TrimEnd('.')}); the certificate is trusted only if issued by {trusted} " +
                        "for that host name", false, e);
        return null;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }
}
