using CloudArchive.Core.Output;

namespace CloudArchive.Core.Tests;

/// <summary>Sizes and ages read the same in every command's text.</summary>
public sealed class UnitsTests
{
    [Theory]
    [InlineData(0, "0.0 MiB", "0.0 KiB")]
    [InlineData(1536, "0.0 MiB", "1.5 KiB")]
    [InlineData(1048576, "1.0 MiB", "1.0 MiB")]
    [InlineData(16L * 1048576 + 524288, "16.5 MiB", "16.5 MiB")]
    public void SizesAreMibWithOneDecimalAndSmallOnesKib(long bytes, string mib, string size)
    {
        Assert.Equal(mib, Units.Mib(bytes));
        Assert.Equal(size, Units.Size(bytes));
    }

    [Theory]
    [InlineData(42, "42 s")]
    [InlineData(119, "119 s")]
    [InlineData(720, "12 min")]
    [InlineData(5.2 * 3600, "5.2 h")]
    [InlineData(3.1 * 86400, "3.1 d")]
    public void AgesAreSaidAsPeopleSayThem(double seconds, string said) => Assert.Equal(said, Units.Age(seconds));
}
