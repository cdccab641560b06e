using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

/// <summary>restore refuses, before writing anything, a backup whose record names another PostgreSQL version than its files.</summary>
public sealed class BackupVersionTests
{
    private static BackupRecord Record(int versionNum, params (string Path, string Content)[] files) => new()
    {
        Id = "20261125T000000Z-abcdef", SystemIdentifier = "1", ServerVersionNum = versionNum, Timeline = 1,
        StartLsn = "0/2000028", StopLsn = "0/2000100", StartWalFile = "000000010000000000000002", StopWalFile = "000000010000000000000002",
        StartTime = DateTimeOffset.UnixEpoch, StopTime = DateTimeOffset.UnixEpoch, WalSegmentSize = 16 << 20, BackupLabel = "",
        Compression = "zstd", Size = 0, StoredSize = 0, Bundles = [],
        Entries = files.Select(f => new BackupEntry(f.Path, 0, f.Content.Length, Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(f.Content))), 384)).ToList(),
        Tablespaces = [],
    };

    [Fact]
    public void ARecordWhoseVersionIsNotItsFilesIsRefused()
    {
        BackupVersion.RequireConsistent(Record(170010, ("PG_VERSION", "17\n"), ("pg_tblspc/16385/PG_17_202406281/5/1", "x")));
        BackupVersion.RequireConsistent(Record(130023, ("./PG_VERSION", "13\n")));

        var other = Assert.Throws<CorruptObjectException>(() => BackupVersion.RequireConsistent(Record(170010, ("PG_VERSION", "13\n"))));
        Assert.Equal("backup 20261125T000000Z-abcdef does not match its own record: its record says PostgreSQL 17.10 but its PG_VERSION file is not \"17\"; nothing was restored", other.Message);
        var ts = Assert.Throws<CorruptObjectException>(() => BackupVersion.RequireConsistent(Record(170010, ("PG_VERSION", "17\n"), ("pg_tblspc/16385/PG_16_202307071/5/1", "x"))));
        Assert.Contains("tablespace directory pg_tblspc/16385/PG_16_202307071 is another version's", ts.Message);
        Assert.Throws<CorruptObjectException>(() => BackupVersion.RequireConsistent(Record(170010, ("base/1/1", "x"))));
    }
}
