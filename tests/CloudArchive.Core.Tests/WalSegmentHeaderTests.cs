using System.Buffers.Binary;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

public sealed class WalSegmentHeaderTests
{
    private const ulong SystemId = 7_301_234_567_890_123_456UL;

    private static byte[] HeaderBytes(string name = "000000030000000200000011", uint segmentSize = 16 * 1024 * 1024)
    {
        var bytes = new byte[8192];
        WalSegmentHeader.For(WalFileName.Parse(name), SystemId, segmentSize).WriteTo(bytes);
        return bytes;
    }

    [Fact]
    public void ReadsWhatWasWritten()
    {
        var header = WalSegmentHeader.TryRead(HeaderBytes());
        Assert.NotNull(header);
        Assert.Equal(SystemId, header.SystemIdentifier);
        Assert.Equal(16u * 1024 * 1024, header.SegmentSize);
        Assert.Equal(8192u, header.BlockSize);
        Assert.Equal(3u, header.PageTimeline);
        Assert.Equal(WalFileName.Parse("000000030000000200000011").StartLsn(16 * 1024 * 1024), header.PageAddress);
        Assert.Equal("2/11000000", header.PageAddress.ToString());
    }

    [Fact]
    public void ReadsAHeaderLaidOutAsPostgresWritesIt()
    {
        // XLogLongPageHeaderData as PostgreSQL 15 writes it (little-endian): magic 0xD110, info XLP_LONG_HEADER,
        // timeline 1, page address 0/3000000, rem_len 0, system identifier, segment size 16 MiB, block size 8192.
        var bytes = new byte[40];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, 0xD110);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2), 0x0002);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), 0x3000000);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(24), SystemId);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(32), 16 * 1024 * 1024);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(36), 8192);

        var header = WalSegmentHeader.TryRead(bytes);
        Assert.NotNull(header);
        Assert.Equal("0/3000000", header.PageAddress.ToString());
        Assert.Equal(SystemId, header.SystemIdentifier);
        Assert.Equal(WalFileName.Parse("000000010000000000000003").StartLsn(header.SegmentSize), header.PageAddress);
    }

    [Theory]
    [InlineData(0xD10D)] // PostgreSQL 13
    [InlineData(0xD106)] // PostgreSQL 12
    [InlineData(0xD113)] // PostgreSQL 16
    public void AcceptsMagicOfOtherReleases(int magic)
    {
        var bytes = HeaderBytes();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, (ushort)magic);
        Assert.NotNull(WalSegmentHeader.TryRead(bytes));
    }

    [Theory]
    [InlineData(0x0000)]
    [InlineData(0x1234)]
    [InlineData(0xC110)]
    [InlineData(0xE110)]
    public void RejectsBadMagic(int magic)
    {
        var bytes = HeaderBytes();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, (ushort)magic);
        Assert.Null(WalSegmentHeader.TryRead(bytes));
    }

    [Fact]
    public void RejectsAPageWithoutTheLongHeaderFlag()
    {
        var bytes = HeaderBytes();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2), 0x0001);
        Assert.Null(WalSegmentHeader.TryRead(bytes));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(512u * 1024)]
    [InlineData(3u * 1024 * 1024)]
    [InlineData(16u * 1024 * 1024 + 1)]
    [InlineData(2048u * 1024 * 1024)]
    public void RejectsABadSegmentSize(uint size)
    {
        var bytes = HeaderBytes();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(32), size);
        Assert.Null(WalSegmentHeader.TryRead(bytes));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(512u)]
    [InlineData(8191u)]
    [InlineData(131072u)]
    public void RejectsABadBlockSize(uint size)
    {
        var bytes = HeaderBytes();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(36), size);
        Assert.Null(WalSegmentHeader.TryRead(bytes));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(39)]
    public void RejectsTooFewBytes(int length) =>
        Assert.Null(WalSegmentHeader.TryRead(HeaderBytes().AsSpan(0, length)));

    [Fact]
    public void RejectsTextAndZeros()
    {
        Assert.Null(WalSegmentHeader.TryRead(new byte[8192]));
        Assert.Null(WalSegmentHeader.TryRead("1\t0/3000000\tno recovery target specified\n and some more text"u8));
    }

    [Theory]
    [InlineData(1u * 1024 * 1024)]
    [InlineData(1024u * 1024 * 1024)]
    public void AcceptsEveryValidSegmentSize(uint size)
    {
        var header = WalSegmentHeader.TryRead(HeaderBytes(segmentSize: size));
        Assert.NotNull(header);
        Assert.Equal(size, header.SegmentSize);
    }
}
