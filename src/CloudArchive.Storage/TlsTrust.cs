using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Native;

namespace CloudArchive.Storage;

/// <summary>
/// A private CA bundle (--s3-ca-file, --azure-ca-file): the only roots a store's certificate may chain to, instead of the
/// system's store. The host name is still checked; there is no way to turn verification off. (.NET on Linux still reads
/// the system's store once a process, for intermediates: OpenSslX509ChainProcessor loads it whatever the trust mode.)
/// Revocation is not checked: a private CA seldom publishes lists, and fetching them would reach beyond the store's
/// network on every start.
/// </summary>
public sealed class TlsTrust
{
    private readonly X509Certificate2Collection _roots;

    private TlsTrust(string files, Setting setting, X509Certificate2Collection roots)
    {
        Files = files;
        Setting = setting;
        _roots = roots;
    }

    /// <summary>The PEM files, as configured: for messages.</summary>
    public string Files { get; }

    /// <summary>The setting that named them: for messages.</summary>
    public Setting Setting { get; }

    /// <summary>How many CA certificates the files hold.</summary>
    public int Count => _roots.Count;

    /// <summary>
    /// The CA certificates of <paramref name="files"/> (PEM, separated by commas); null when the setting is not given. A file
    /// that is missing, unreadable or holds no certificate is a configuration error naming <paramref name="setting"/>.
    /// </summary>
    public static TlsTrust? Load(string? files, Setting setting)
    {
        if (string.IsNullOrWhiteSpace(files)) return null;
        var roots = new X509Certificate2Collection();
        foreach (var file in files.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string text;
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CloudArchiveException(ExitCode.Usage, $"{setting.Variable}: cannot read the CA file {file}: {e.Message}");
            }
            var before = roots.Count;
            try
            {
                roots.ImportFromPem(text);
            }
            catch (CryptographicException e)
            {
                throw new CloudArchiveException(ExitCode.Usage, $"{setting.Variable}: the CA file {file} holds a certificate that does not parse: {e.Message}");
            }
            if (roots.Count == before)
                throw new CloudArchiveException(ExitCode.Usage, $"{setting.Variable}: the CA file {file} holds no PEM certificate " +
                    "(-----BEGIN CERTIFICATE-----)");
        }
        IsolateFromSystemStore(files);
        return new TlsTrust(files, setting, roots);
    }

    /// <summary>
    /// .NET on Linux reads every file of the system's CA directory (/etc/ssl/certs) the first time a process checks a
    /// certificate chain, whatever the trust mode: about 60 ms of every wal-push and wal-fetch over TLS on the test
    /// machine (bench/RESULTS.md). With a CA file configured, the process's OpenSSL is pointed at that file instead (its
    /// C environment, before the first TLS connection: SSL_CERT_FILE the first file, SSL_CERT_DIR a directory that does not
    /// exist), so the file is this process's whole trust, for every TLS connection it makes, a credential service too.
    /// Programs it starts (pg_dump, the server of a drill) keep their own environment.
    /// </summary>
    private static void IsolateFromSystemStore(string files)
    {
        var first = Path.GetFullPath(files.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0]);
        Posix.SetNativeEnvironment("SSL_CERT_FILE", first);
        Posix.SetNativeEnvironment("SSL_CERT_DIR", "/nonexistent/cloudarchive-trusts-only-its-ca-file");
    }

    /// <summary>
    /// An HTTP handler whose TLS accepts only a certificate that chains to these CAs and names the host. The chain policy is
    /// copied for every connection, so one handler serves them all.
    /// </summary>
    public SocketsHttpHandler CreateHandler()
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.AddRange(_roots);
        return new SocketsHttpHandler { SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy } };
    }
}
