using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Crypto;

namespace CloudArchive.Core.Tests;

/// <summary>The managed SHA-256 of identities gives OpenSSL's digest for every length around the block boundaries.</summary>
public sealed class LightSha256Tests
{
    [Fact]
    public void KnownVectors()
    {
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", LightSha256.HexOf(""));
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", LightSha256.HexOf("abc"));
        Assert.Equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            LightSha256.HexOf("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"));
    }

    [Fact]
    public void EqualsOpenSslForEveryLengthUpToFourBlocksAndBeyond()
    {
        var random = new Random(18);
        foreach (var length in Enumerable.Range(0, 260).Concat([1000, 4096, 65_537]))
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.Equal(SHA256.HashData(data), LightSha256.Hash(data));
        }
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("store=s3://bücket/prefix\ns3-endpoint=https://x"))),
            LightSha256.HexOf("store=s3://bücket/prefix\ns3-endpoint=https://x"));
    }
}
