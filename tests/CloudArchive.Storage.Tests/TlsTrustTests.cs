using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;

namespace CloudArchive.Storage.Tests;

/// <summary>Reading a CA file (--s3-ca-file, --azure-ca-file): what it trusts, and a one-line configuration error for what it cannot use.</summary>
public sealed class TlsTrustTests
{
    private static readonly string Dir = Directory.CreateDirectory(Path.Combine(Backends.Scratch, "ca-files-" + Guid.NewGuid().ToString("N"))).FullName;

    private static string CertificatePem(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return cert.ExportCertificatePem() + "\n";
    }

    private static string Write(string name, string text)
    {
        var path = Path.Combine(Dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void NoSettingMeansTheSystemsCas() => Assert.Null(TlsTrust.Load(null, SettingsTable.S3CaFile));

    [Fact]
    public void ABundleAndSeveralFilesTrustEveryCertificateInThem()
    {
        var bundle = Write("bundle.pem", "comment lines before a PEM block are allowed\n" + CertificatePem("a") + CertificatePem("b"));
        var single = Write("single.pem", CertificatePem("c"));

        Assert.Equal(2, TlsTrust.Load(bundle, SettingsTable.S3CaFile)!.Count);
        Assert.Equal(3, TlsTrust.Load($"{bundle}, {single}", SettingsTable.AzureCaFile)!.Count);
    }

    [Fact]
    public void AMissingFileIsAConfigurationErrorNamingTheSetting()
    {
        var missing = Path.Combine(Dir, "missing.pem");
        var e = Assert.Throws<CloudArchiveException>(() => TlsTrust.Load(missing, SettingsTable.S3CaFile));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.StartsWith($"CLOUDARCHIVE_S3_CA_FILE: cannot read the CA file {missing}", e.Message);
    }

    [Theory]
    [InlineData("not a certificate\n", "holds no PEM certificate")]
    [InlineData("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "holds no PEM certificate")]
    [InlineData("-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n", "holds a certificate that does not parse")]
    public void AFileWithoutAUsableCertificateIsAConfigurationError(string text, string expected)
    {
        var path = Write(Guid.NewGuid().ToString("N") + ".pem", text);
        var e = Assert.Throws<CloudArchiveException>(() => TlsTrust.Load(path, SettingsTable.AzureCaFile));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains($"CLOUDARCHIVE_AZURE_CA_FILE: the CA file {path} {expected}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ADirectoryIsAConfigurationError()
    {
        var e = Assert.Throws<CloudArchiveException>(() => TlsTrust.Load(Dir, SettingsTable.S3CaFile));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
    }
}
