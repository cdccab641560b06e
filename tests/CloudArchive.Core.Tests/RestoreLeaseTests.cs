using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Tests;

public sealed class RestoreLeaseTests
{
    [Fact]
    public void ARenewalKeyNamesItsBackupLeaseTimeAndPosition()
    {
        var r = RestoreLease.Parse("leases/20261125T101010Z-f0f0f0/0123456789abcdef-20261125T120000Z-000000010000000000000007");
        Assert.NotNull(r);
        Assert.Equal("20261125T101010Z-f0f0f0", r.BackupId);
        Assert.Equal("0123456789abcdef", r.LeaseId);
        Assert.Equal(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero), r.At);
        Assert.Equal("000000010000000000000007", r.Position);
    }

    [Theory]
    [InlineData("leases/b/l-20261125T120000Z")]
    [InlineData("leases/b/l-notatime-000000010000000000000007")]
    [InlineData("leases/b/l-20261125T120000Z-00000002.history")]
    [InlineData("manifest/backups/x.json")]
    [InlineData("leases/b/c/l-20261125T120000Z-000000010000000000000007")]
    public void AnythingElseUnderLeasesIsNotARenewal(string key) => Assert.Null(RestoreLease.Parse(key));
}
