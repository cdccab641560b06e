using System.Security.Authentication;
using CloudArchive.Core.Storage;

namespace CloudArchive.Storage;

/// <summary>The transport faults every cloud backend reads the same way, before its SDK's own errors.</summary>
internal static class TransportFaults
{
    /// <summary>
    /// A TLS handshake that failed (an untrusted or mismatched certificate, no common protocol) does not heal by
    /// retrying for a minute: it is a permanent store error naming the endpoint and the reason, or null.
    /// </summary>
    public static StoreUnavailableException? Tls(Exception e, string what, string endpoint)
    {
        for (var inner = e; inner is not null; inner = inner.InnerException)
            if (inner is AuthenticationException tls)
                return new StoreUnavailableException(
                    $"{what}: TLS with {endpoint} failed ({tls.Message.TrimEnd('.')}); check that its certificate is issued by a CA this host trusts (SSL_CERT_FILE, /etc/ssl/certs) for that host name", false, e);
        return null;
    }
}
