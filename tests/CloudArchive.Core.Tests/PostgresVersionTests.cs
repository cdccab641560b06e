namespace CloudArchive.Core.Tests;

/// <summary>Which servers CloudArchive works with, and which client program it runs for one.</summary>
public sealed class PostgresVersionTests
{
    [Theory]
    [InlineData(120022, "PostgreSQL 12.22 is not supported: CloudArchive supports 13 to 18")]
    [InlineData(90624, "PostgreSQL 9.6.24 is not supported: CloudArchive supports 13 to 18")]
    public void AServerOlderThan13IsRefusedWithOneLineNamingTheRange(int versionNum, string message)
    {
        var e = Assert.Throws<CloudArchiveException>(() => PostgresVersion.RequireSupported(versionNum));
        Assert.Equal(ExitCode.PostgresFailed, e.ExitCode);
        Assert.Equal(message, e.Message);
    }

    [Theory]
    [InlineData(130000)]
    [InlineData(150014)]
    [InlineData(180004)]
    public void SupportedServersPassWithoutAWarning(int versionNum) => Assert.Null(PostgresVersion.RequireSupported(versionNum));

    [Fact]
    public void AServerNewerThanTheNewestTestedIsUsedWithAWarning() =>
        Assert.Contains("PostgreSQL 19.1 is newer than the versions CloudArchive is tested with (13 to 18)", PostgresVersion.RequireSupported(190001));

    [Theory]
    [InlineData("15.14 (Debian 15.14-0+deb12u1)", 15)]
    [InlineData("18beta1", 18)]
    [InlineData("9.6.24", 9)]
    [InlineData("garbage", null)]
    public void ProgramMajorsAreRead(string version, int? major) => Assert.Equal(major, PostgresVersion.ProgramMajor(version));

    private static readonly ClientProgram Debian15 = new("/usr/lib/postgresql/15/bin/pg_dump", "15.14 (Debian 15.14-0+deb12u1)", 15);
    private static readonly ClientProgram Local17 = new("/usr/local/pgsql/bin/pg_dump", "17.2", 17);

    [Fact]
    public void TheNewestProgramThatIsNewEnoughIsChosen()
    {
        var need = ClientNeed.ForServer("pg_dump", "dump", 160004);
        Assert.Same(Local17, need.Choose(null, null, [Debian15, Local17]));
        Assert.Same(Debian15, ClientNeed.ForServer("pg_dump", "dump", 130023).Choose(null, null, [Debian15]));
    }

    [Fact]
    public void OnlyAnOlderProgramIsRefusedNamingTheServerAndWhatToInstall()
    {
        var e = Assert.Throws<CloudArchiveException>(() => ClientNeed.ForServer("pg_dump", "dump", 170002).Choose(null, null, [Debian15]));
        Assert.Equal(ExitCode.PostgresFailed, e.ExitCode);
        Assert.Equal("pg_dump 15.14 (/usr/lib/postgresql/15/bin/pg_dump, the newest found) cannot dump PostgreSQL 17.2: install postgresql-client-17 or set --pg-bin to its bin directory", e.Message);
        var none = Assert.Throws<CloudArchiveException>(() => ClientNeed.ForServer("pg_basebackup", "back up", 170002).Choose(null, null, []));
        Assert.Contains("pg_basebackup not found (PATH, /usr/lib/postgresql/*/bin, pg_config --bindir) to back up PostgreSQL 17.2: install postgresql-client-17", none.Message);
    }

    [Fact]
    public void TheConfiguredDirectoryIsUsedOrRefusedNeverPassedOver()
    {
        var need = ClientNeed.ForServer("pg_dump", "dump", 170002);
        var old = Assert.Throws<CloudArchiveException>(() => need.Choose("/usr/lib/postgresql/15/bin", Debian15, [Local17]));
        Assert.Equal(ExitCode.PostgresFailed, old.ExitCode);
        Assert.Contains("pg_dump 15.14 in /usr/lib/postgresql/15/bin (--pg-bin / CLOUDARCHIVE_PG_BIN) cannot dump PostgreSQL 17.2", old.Message);
        var missing = Assert.Throws<CloudArchiveException>(() => need.Choose("/opt/empty", null, [Local17]));
        Assert.Contains("pg_dump not found in /opt/empty", missing.Message);
        Assert.Same(Local17, need.Choose("/usr/local/pgsql/bin", Local17, []));
    }
}
