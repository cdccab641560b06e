using System.Buffers.Binary;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

public sealed class ControlFileTests
{
    /// <summary>pg_control's start: system identifier, then fields that move between releases, then the float marker and sizes.</summary>
    private static byte[] Control(ulong system, int markerAt, uint segmentSize)
    {
        var bytes = new byte[8192];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, system);
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(markerAt), 1234567.0);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(markerAt + 8), 8192);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(markerAt + 12), 131072);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(markerAt + 16), 8192);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(markerAt + 20), segmentSize);
        return bytes;
    }

    [Theory]
    [InlineData(232, 16u << 20)]
    [InlineData(240, 1u << 20)]
    [InlineData(256, 64u << 20)]
    public void ReadsTheSystemIdentifierAndSegmentSizeWhereverTheMarkerIs(int markerAt, uint segmentSize)
    {
        var control = ControlFile.Parse(Control(7_301_234_567_890_123_456UL, markerAt, segmentSize))!;
        Assert.Equal(7_301_234_567_890_123_456UL, control.SystemIdentifier);
        Assert.Equal(segmentSize, control.SegmentSize);
    }

    [Fact]
    public void AnImpossibleSegmentSizeIsUnknown() => Assert.Null(ControlFile.Parse(Control(1, 232, 12345))!.SegmentSize);

    [Fact]
    public void ReadsTheSettingsRecoveryNeedsFromBeforeTheMarker()
    {
        // The layout of PostgreSQL 13 to 18 (checked against pg_controldata): the marker at 208 in all of them.
        var bytes = Control(1, 208, 16u << 20);
        int[] before = [8, 0, 70, 3, 6, 9, 77, 0, 2];
        for (var i = 0; i < before.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(208 - 4 * (i + 1)), before[i]);
        Assert.Equal(new ServerLimits(2, 77, 9, 6, 3, 70), ControlFile.Parse(bytes)!.Limits);

        // maxAlign not where it should be: another layout, nothing taken from it.
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(204), 5);
        Assert.Null(ControlFile.Parse(bytes)!.Limits);
    }
}
