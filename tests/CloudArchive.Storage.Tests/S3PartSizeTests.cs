using CloudArchive.Storage.S3;

namespace CloudArchive.Storage.Tests;

/// <summary>Multipart part sizes: small for small objects, and room within S3's 10,000 parts for a dump of terabytes.</summary>
public sealed class S3PartSizeTests
{
    [Fact]
    public void SmallObjectsUseEightMiBParts()
    {
        Assert.Equal(8 << 20, S3ObjectStore.PartSizeOf(1));
        Assert.Equal(8 << 20, S3ObjectStore.PartSizeOf(1000));
        Assert.Equal(16 << 20, S3ObjectStore.PartSizeOf(1001));
    }

    [Fact]
    public void TenThousandPartsHoldAlmostFourTiBInPartsS3Accepts()
    {
        long total = 0;
        for (var n = 1; n <= S3ObjectStore.MaxParts; n++)
        {
            var size = S3ObjectStore.PartSizeOf(n);
            Assert.InRange(size, 5 << 20, 1 << 30);   // S3: at least 5 MiB (but the last), at most 5 GiB; an array at most 1 GiB here
            Assert.True(n == 1 || size >= S3ObjectStore.PartSizeOf(n - 1));
            total += size;
        }
        Assert.True(total > 3_900L << 30, $"{total >> 30} GiB");
    }
}
