using CloudArchive.Core.Backup;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

/// <summary>Block sets and chains: which member of a chain a restore takes each block and file from, and which chains it refuses.</summary>
public sealed class BackupChainTests
{
    private const int Block = 8192;

    [Fact]
    public void BlockRangesParseFormatAndCombine()
    {
        var a = BlockRanges.TryParse("0-5,9,12-40", 100)!;
        Assert.Equal("0-5,9,12-40", a.ToString());
        Assert.Equal(36, a.Count);
        Assert.True(a.Contains(9) && a.Contains(40) && !a.Contains(8) && !a.Contains(41));
        var b = BlockRanges.FromSorted([3, 4, 5, 6, 9, 10, 39, 40, 41]);
        Assert.Equal("3-6,9-10,39-41", b.ToString());
        Assert.Equal("3-5,9,39-40", a.Intersect(b).ToString());
        Assert.Equal("0-2,12-38", a.Except(b).ToString());
        Assert.Equal("6,10,41", b.Except(a).ToString());
        Assert.Equal("", BlockRanges.All(10).Except(BlockRanges.All(10)).ToString());
    }

    [Theory]
    [InlineData("5-3")]     // backwards
    [InlineData("1,1")]     // twice
    [InlineData("3,1")]     // unordered
    [InlineData("1-2,3")]   // adjacent runs are written as one
    [InlineData("0-10")]    // past the file's end
    [InlineData("-1")]
    [InlineData("a")]
    [InlineData("1,")]
    public void ARecordsBlockListThatIsNotSaneIsRefused(string text) => Assert.Null(BlockRanges.TryParse(text, 10));

    [Fact]
    public void StoredBytesCountsAShortLastBlock()
    {
        var size = 3L * Block + 100;
        Assert.Equal(2L * Block + 100, BlockMap.StoredBytes(BlockRanges.FromSorted([0, 1, 3]), size, Block));
        Assert.Equal(100, BlockMap.StoredBytes(BlockRanges.FromSorted([3]), size, Block));
    }

    [Theory]
    [InlineData("base/1/16384", true)]
    [InlineData("base/1/16384.2", true)]
    [InlineData("base/1/16384_fsm", true)]
    [InlineData("base/1/16384_vm.1", true)]
    [InlineData("global/1262", true)]
    [InlineData("pg_tblspc/16385/PG_15_202209061/5/16386", true)]
    [InlineData("global/pg_control", false)]
    [InlineData("base/1/pg_filenode.map", false)]
    [InlineData("base/1/PG_VERSION", false)]
    [InlineData("pg_xact/0000", false)]
    [InlineData("pg_multixact/offsets/0000", false)]
    public void RelationFilesAreTheOnesBackedUpByBlock(string path, bool relation) => Assert.Equal(relation, BlockMap.IsRelationFile(path));

    private static BackupRecord Backup(string id, string? type, string? reference, int hour, params BackupEntry[] entries) => new()
    {
        Id = id, SystemIdentifier = "7", ServerVersionNum = 170002, Timeline = 1, StartLsn = "0/2000028", StopLsn = "0/2000100",
        StartWalFile = "000000010000000000000002", StopWalFile = "000000010000000000000002",
        StartTime = DateTimeOffset.UnixEpoch.AddHours(hour), StopTime = DateTimeOffset.UnixEpoch.AddHours(hour).AddMinutes(1),
        WalSegmentSize = 16 << 20, BackupLabel = "", Compression = "zstd", Size = 0, StoredSize = 0,
        Bundles = [new BackupBundle($"backups/{id}/data/00000.tar.zst", 0, 0)], Entries = [.. entries], Tablespaces = [],
        Type = type, Reference = reference, BlockSize = Block,
    };

    private static BackupEntry Rel(long blocks, string? stored) => new("base/5/16384", 0, blocks * Block, "m", 384) { Blocks = true, Stored = stored };
    private static BackupEntry Conf(string sha, string? stored) => new("postgresql.conf", 0, 10, sha, 384) { Stored = stored };

    [Fact]
    public void EachBlockComesFromTheNewestBackupThatStoredItAndEachFileFromTheOneThatHoldsIt()
    {
        var full = Backup("f", "full", null, 1, Rel(10, null), Conf("c1", null));
        var diff = Backup("d", "diff", "f", 2, Rel(12, "2-3,10-11"), Conf("c1", ""));
        var incr = Backup("i", "incr", "d", 3, Rel(8, "3,5"), Conf("c2", null));

        var chain = BackupChain.Resolve(incr, [full, diff, incr]);
        Assert.Equal(["i", "d", "f"], chain.Members.Select(m => m.Id));
        var pieces = chain.Plan().SelectMany(t => t.Pieces.Values.Select(p => (t.Source.Id, p.Held.Path, Take: p.Take?.ToString()))).ToList();

        Assert.Contains(("i", "base/5/16384", "3,5"), pieces);
        Assert.Contains(("d", "base/5/16384", "2"), pieces);
        Assert.Contains(("f", "base/5/16384", "0-1,4,6-7"), pieces);
        Assert.Contains(("i", "postgresql.conf", null), pieces);
        Assert.Equal(4, pieces.Count);
    }

    [Fact]
    public void AFileRecordedUnchangedIsTakenFromTheBackupThatStoredIt()
    {
        var full = Backup("f", "full", null, 1, Conf("c1", null));
        var incr = Backup("i", "incr", "f", 2, Conf("c1", ""));
        var tasks = BackupChain.Resolve(incr, [full, incr]).Plan();
        Assert.Equal("f", Assert.Single(tasks).Source.Id);
    }

    [Fact]
    public void AMissingOrUnfitReferenceBreaksTheChainNamingTheLink()
    {
        var full = Backup("f", "full", null, 1, Conf("c1", null));
        var incr = Backup("i", "incr", "gone", 2, Conf("c1", ""));
        var e = Assert.Throws<CloudArchiveException>(() => BackupChain.Resolve(incr, [full, incr]));
        Assert.Equal(ExitCode.NoRecoveryPath, e.ExitCode);
        Assert.Contains("i builds on gone, which is not in the store", e.Message);

        var other = full with { SystemIdentifier = "8" };
        Assert.Equal(ExitCode.NoRecoveryPath, Assert.Throws<CloudArchiveException>(() =>
            BackupChain.Resolve(Backup("i", "incr", "f", 2, Conf("c1", "")), [other])).ExitCode);
        // A diff builds on a full backup only.
        var incr1 = Backup("i1", "incr", "f", 2, Conf("c1", ""));
        Assert.Equal(ExitCode.NoRecoveryPath, Assert.Throws<CloudArchiveException>(() =>
            BackupChain.Resolve(Backup("d", "diff", "i1", 3, Conf("c1", "")), [full, incr1])).ExitCode);
        // A reference that ended after the backup began cannot be what it compared with.
        Assert.Equal(ExitCode.NoRecoveryPath, Assert.Throws<CloudArchiveException>(() =>
            BackupChain.Resolve(Backup("i", "incr", "f", 0, Conf("c1", "")), [full])).ExitCode);
    }

    [Fact]
    public void ARecordThatDisagreesWithItsReferenceOrLoopsIsRefused()
    {
        var full = Backup("f", "full", null, 1, Conf("c1", null));
        // Recorded unchanged, but with another checksum than the reference holds.
        var liar = Backup("i", "incr", "f", 2, Conf("c9", ""));
        Assert.Equal(ExitCode.NoRecoveryPath, Assert.Throws<CloudArchiveException>(() => BackupChain.Resolve(liar, [full, liar]).Plan()).ExitCode);
        // Blocks no member holds.
        var grown = Backup("i", "incr", "f", 2, Rel(4, "3"));
        var fullRel = Backup("f", "full", null, 1, Rel(2, null));
        Assert.Throws<CloudArchiveException>(() => BackupChain.Resolve(grown, [fullRel, grown]).Plan());
        // Blocks past the file's end.
        var bad = Backup("i", "incr", "f", 2, Rel(4, "0-9"));
        Assert.Throws<CorruptObjectException>(() => BackupChain.Resolve(bad, [fullRel, bad]).Plan());
        // A chain that loops.
        var a = Backup("a", "incr", "b", 3, Conf("c1", ""));
        var b = Backup("b", "incr", "a", 2, Conf("c1", "")) with { StopTime = DateTimeOffset.UnixEpoch };
        Assert.Throws<CorruptObjectException>(() => BackupChain.Resolve(a, [a, b]));
    }
}
