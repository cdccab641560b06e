using CloudArchive.Core.Backup;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

/// <summary>
/// restore --db-include: which files are the databases not included (written as zeros), from the backup record's
/// database list; and each refusal, with a planted record: no list, a name not in it, a list not sane, a database without
/// a directory in the backup.
/// </summary>
public sealed class DatabaseSelectionTests
{
    private static BackupRecord Record(List<BackupDatabase>? databases, params string[] paths) => new()
    {
        Id = "20261206T100000Z-abcdef", SystemIdentifier = "7", ServerVersionNum = 150000, Timeline = 1, StartLsn = "0/2000028", StopLsn = "0/2000100",
        StartWalFile = "000000010000000000000002", StopWalFile = "000000010000000000000002", StartTime = DateTimeOffset.UnixEpoch,
        StopTime = DateTimeOffset.UnixEpoch, WalSegmentSize = 16 << 20, BackupLabel = "", Compression = "zstd", Size = 0, StoredSize = 0, Bundles = [],
        Entries = paths.Select(p => new BackupEntry(p, 0, 8192, p.EndsWith('/') ? null : "sha", 0x180)).ToList(), Tablespaces = [], Databases = databases,
    };

    private static readonly List<BackupDatabase> Databases =
        [new(1, "template1"), new(4, "template0"), new(5, "postgres"), new(16384, "keep"), new(16390, "other"), new(16400, "third")];

    private static readonly string[] Paths =
    [
        "PG_VERSION", "global/1262", "global/pg_control", "base/1/1259", "base/5/1259", "base/16384/1259", "base/16384/16401",
        "base/16390/PG_VERSION", "base/16390/pg_filenode.map", "base/16390/1259", "base/16390/16402_vm", "base/16400/1259",
        "pg_tblspc/16500/PG_15_202209061/16390/16403", "pg_tblspc/16500/PG_15_202209061/16384/16404", "base/16450/1259",
    ];

    [Fact]
    public void TheNamedDatabasesTheSystemOnesAndTheSharedCatalogAreRestoredEveryOtherDatabasesFilesAreZeros()
    {
        var s = DatabaseSelection.Resolve(Record(Databases, Paths), ["keep"])!;

        Assert.Equal(["keep"], s.Included.Select(d => d.Name));
        Assert.Equal(["other", "third"], s.Others.Select(d => d.Name));
        var zeroed = Paths.Where(s.IsZeroed).ToList();
        // Every file of other (its catalog too, in whichever tablespace), third's, and a database the list does not have
        // (created while the backup ran).
        Assert.Equal(["base/16390/PG_VERSION", "base/16390/pg_filenode.map", "base/16390/1259", "base/16390/16402_vm", "base/16400/1259",
            "pg_tblspc/16500/PG_15_202209061/16390/16403", "base/16450/1259"], zeroed);
        Assert.Null(DatabaseSelection.Resolve(Record(Databases, Paths), []));
        // template1 and postgres are always restored: naming them changes nothing.
        Assert.Equal(["other", "third"], DatabaseSelection.Resolve(Record(Databases, Paths), ["keep", "postgres"])!.Others.Select(d => d.Name));
    }

    [Fact]
    public void ARecordWithoutDatabaseNamesANameItDoesNotHaveAndADatabaseWithoutADirectoryAreRefused()
    {
        var old = Assert.Throws<CloudArchiveException>(() => DatabaseSelection.Resolve(Record(null, Paths), ["keep"]));
        Assert.Equal(ExitCode.Usage, old.ExitCode);
        Assert.Contains("does not record which database is which directory", old.Message);

        var unknown = Assert.Throws<CloudArchiveException>(() => DatabaseSelection.Resolve(Record(Databases, Paths), ["keep", "nope\u001b[2J"]));
        Assert.Equal(ExitCode.Usage, unknown.ExitCode);
        Assert.Contains("has no database 'nope?[2J' (it has keep, other, postgres, template0, template1, third)", unknown.Message);

        var moved = Assert.Throws<CloudArchiveException>(() => DatabaseSelection.Resolve(Record([.. Databases, new(16600, "ghost")], Paths), ["ghost"]));
        Assert.Equal(ExitCode.Usage, moved.ExitCode);
        Assert.Contains("'ghost' (OID 16600) has no directory", moved.Message);
    }

    [Theory]
    [InlineData(16384, "other")]
    [InlineData(0, "zero")]
    [InlineData(16700, "")]
    [InlineData(16700, "bell\a")]
    public void AListThatIsNotSaneIsACorruptRecord(uint oid, string name)
    {
        var e = Assert.Throws<CorruptObjectException>(() => DatabaseSelection.Resolve(Record([.. Databases, new(oid, name)], Paths), ["keep"]));
        Assert.Contains("its database list names", e.Message);
    }
}
