using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

public sealed class LsnTests
{
    [Theory]
    [InlineData("0/0", 0UL)]
    [InlineData("0/16B3748", 0x16B3748UL)]
    [InlineData("1/0", 0x1_0000_0000UL)]
    [InlineData("16/B374D848", 0x16_B374_D848UL)]
    [InlineData("FFFFFFFF/FFFFFFFF", ulong.MaxValue)]
    public void FormatsAsPostgresAndParsesBack(string text, ulong value)
    {
        var lsn = new Lsn(value);
        Assert.Equal(text, lsn.ToString());
        Assert.Equal(lsn, Lsn.Parse(text));
        Assert.True(Lsn.TryParse(text, out var parsed));
        Assert.Equal(value, parsed.Value);
    }

    [Theory]
    [InlineData("0/16b3748", 0x16B3748UL)]
    [InlineData("00000000/00000001", 1UL)]
    public void AcceptsLowerCaseAndLeadingZeros(string text, ulong value) =>
        Assert.Equal(value, Lsn.Parse(text).Value);

    [Fact]
    public void RoundTripsArbitraryValues()
    {
        var random = new Random(4711);
        for (var i = 0; i < 1000; i++)
        {
            var value = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40);
            var lsn = new Lsn(value);
            Assert.Equal(lsn, Lsn.Parse(lsn.ToString()));
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("/")]
    [InlineData("0/")]
    [InlineData("/0")]
    [InlineData("0/G")]
    [InlineData("1/2/3")]
    [InlineData("100000000/0")]
    [InlineData("0/100000000")]
    [InlineData("-1/0")]
    [InlineData("+1/0")]
    [InlineData("0x1/0")]
    [InlineData(" 0/1")]
    [InlineData("0/1 ")]
    [InlineData("0:1")]
    public void RejectsWhatIsNotAnLsn(string text)
    {
        Assert.False(Lsn.TryParse(text, out _));
        Assert.Throws<FormatException>(() => Lsn.Parse(text));
    }

    [Fact]
    public void OrdersByPosition()
    {
        var a = Lsn.Parse("0/FFFFFFFF");
        var b = Lsn.Parse("1/0");
        Assert.True(a < b && b > a && a <= b && b >= a);
        Assert.True(a.CompareTo(b) < 0);
        Assert.Equal(0, b.CompareTo(Lsn.Parse("1/0")));
    }
}
