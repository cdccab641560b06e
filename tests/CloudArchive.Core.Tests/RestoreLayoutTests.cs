using CloudArchive.Core.Backup;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

/// <summary>Every path of a backup record is placed, and checked, before restore writes anything.</summary>
public sealed class RestoreLayoutTests
{
    private static BackupRecord Record(IEnumerable<string> files, params BackupTablespace[] tablespaces) => new()
    {
        Id = "20261125T000000Z-abcdef", SystemIdentifier = "1", ServerVersionNum = 150000, Timeline = 1,
        StartLsn = "0/2000028", StopLsn = "0/2000100", StartWalFile = "000000010000000000000002", StopWalFile = "000000010000000000000002",
        StartTime = DateTimeOffset.UnixEpoch, StopTime = DateTimeOffset.UnixEpoch, WalSegmentSize = 16 << 20, BackupLabel = "",
        Compression = "zstd", Size = 0, StoredSize = 0,
        Bundles = [new BackupBundle("backups/20261125T000000Z-abcdef/data/00000.tar.zst", 0, 0)],
        Entries = files.Select(f => new BackupEntry(f, 0, 1, "00", 384)).ToList(),
        Tablespaces = [.. tablespaces],
    };

    private static readonly Dictionary<string, string> NoMap = [];

    [Fact]
    public void FilesGoUnderTheRestoreDirectoryAndTheirTablespace()
    {
        var layout = RestoreLayout.Resolve(Record(["PG_VERSION", "base/1/1259", "pg_tblspc/16385/PG_15_202209061/5/16386"], new BackupTablespace(16385, "fast", "/srv/fast")),
            "/restore/", new Dictionary<string, string> { ["/srv/fast"] = "/mnt/new-fast/" }, inPlace: false);

        Assert.Equal("/restore/base/1/1259", layout.Destination("base/1/1259"));
        Assert.Equal("/mnt/new-fast/PG_15_202209061/5/16386", layout.Destination("pg_tblspc/16385/PG_15_202209061/5/16386"));
        Assert.Equal("/mnt/new-fast", layout.Destination("pg_tblspc/16385"));
        var ts = Assert.Single(layout.Tablespaces);
        Assert.True(ts.Moved);
        Assert.Equal("/srv/fast", ts.RecordedLocation);
    }

    [Theory]
    [InlineData("pg_tblspc/16385/../../etc/cron.d/x")]
    [InlineData("pg_tblspc/16385/PG_15/../../../x")]
    [InlineData("../outside")]
    [InlineData("base/../../outside")]
    [InlineData("/etc/passwd")]
    [InlineData("base//1")]
    [InlineData("base/./1")]
    [InlineData("base/1\n2")]
    [InlineData("")]
    public void APathThatLeavesItsDirectoryIsACorruptBackup(string path)
    {
        var e = Assert.Throws<CorruptObjectException>(() => RestoreLayout.Resolve(Record(["PG_VERSION", path], new BackupTablespace(16385, "fast", "/srv/fast")),
            "/restore", NoMap, inPlace: true));
        Assert.Contains("nothing was restored", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Theory]
    [InlineData("pg_tblspc/16399/x")]
    [InlineData("pg_tblspc/abc/x")]
    [InlineData("pg_tblspc/-1/x")]
    public void APathUnderATablespaceTheRecordDoesNotHaveIsCorrupt(string path)
    {
        var e = Assert.Throws<CorruptObjectException>(() => RestoreLayout.Resolve(Record([path], new BackupTablespace(16385, "fast", "/srv/fast")), "/restore", NoMap, inPlace: true));
        Assert.Contains("no tablespace", e.Message);
    }

    [Theory]
    [InlineData(16385u, "relative/dir")]
    [InlineData(16385u, "/srv/../etc")]
    [InlineData(16385u, "/")]
    [InlineData(16385u, "/srv/a\nb")]
    [InlineData(1663u, "/srv/fast")]
    public void ATablespaceWithAForgedOidOrLocationIsCorrupt(uint oid, string location)
    {
        Assert.Throws<CorruptObjectException>(() => RestoreLayout.Resolve(Record(["PG_VERSION"], new BackupTablespace(oid, "fast", location)), "/restore", NoMap, inPlace: true));
    }

    [Fact]
    public void AnUnmappedTablespaceNeedsTheOperatorsWord()
    {
        var record = Record(["PG_VERSION"], new BackupTablespace(16385, "fast", "/srv/fast"));

        var e = Assert.Throws<CloudArchiveException>(() => RestoreLayout.Resolve(record, "/restore", NoMap, inPlace: false));

        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains("/srv/fast", e.Message);
        Assert.Contains("--tablespace-in-place", e.Message);
        Assert.Equal("/srv/fast", Assert.Single(RestoreLayout.Resolve(record, "/restore", NoMap, inPlace: true).Tablespaces).Location);
    }

    [Theory]
    [InlineData("/restore/ts")]
    [InlineData("/restore")]
    [InlineData("/")]
    public void ATablespaceInsideOrAroundTheRestoreDirectoryIsRefused(string location)
    {
        var record = Record(["PG_VERSION"], new BackupTablespace(16385, "fast", "/srv/fast"));
        var e = Assert.Throws<CloudArchiveException>(() => RestoreLayout.Resolve(record, "/restore", new Dictionary<string, string> { ["/srv/fast"] = location }, inPlace: false));
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void TwoTablespacesInOneDirectoryAreRefused()
    {
        var record = Record(["PG_VERSION"], new BackupTablespace(16385, "a", "/srv/a"), new BackupTablespace(16386, "b", "/srv/a/b"));
        Assert.Throws<CloudArchiveException>(() => RestoreLayout.Resolve(record, "/restore", NoMap, inPlace: true));
    }

    [Theory]
    [InlineData("PG_VERSION", "PG_VERSION")]
    [InlineData("PG_VERSION", "./PG_VERSION")]
    public void APathListedTwiceIsCorrupt(string one, string other)
    {
        Assert.Throws<CorruptObjectException>(() => RestoreLayout.Resolve(Record([one, other]), "/restore", NoMap, inPlace: false));
    }

    [Fact]
    public void ALeadingDotSlashAsPgBasebackupWritesItIsTheDataDirectory()
    {
        var layout = RestoreLayout.Resolve(Record(["./pg_wal/archive_status"]), "/restore", NoMap, inPlace: false);
        Assert.Equal("/restore/pg_wal/archive_status", layout.Destination("./pg_wal/archive_status"));
    }
}
