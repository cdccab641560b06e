using System.Text.Json;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Tests;

/// <summary>
/// What a diff or incr builds on: the newest full (diff) or newest backup (incr) of the same cluster, major and page
/// size; none, or one whose chain is broken, means a full backup.
/// </summary>
public sealed class IncrementalReferenceTests
{
    private const string SystemId = "7";
    private readonly InMemoryObjectStore _store = new();

    private async Task AddAsync(string id, int hour, string type = BackupKinds.Full, string? reference = null, string systemId = SystemId,
        int versionNum = 170002, int blockSize = 8192)
    {
        var at = DateTimeOffset.UnixEpoch.AddHours(hour);
        var record = new BackupRecord
        {
            Id = id, SystemIdentifier = systemId, ServerVersionNum = versionNum, Timeline = 1, StartLsn = "0/2000028", StopLsn = "0/2000100",
            StartWalFile = "000000010000000000000002", StopWalFile = "000000010000000000000002", StartTime = at, StopTime = at.AddMinutes(1),
            WalSegmentSize = 16 << 20, BackupLabel = "", Compression = "zstd", Size = 0, StoredSize = 0, Bundles = [], Entries = [], Tablespaces = [],
            Type = type, Reference = reference, BlockSize = blockSize,
        };
        await _store.PutIfAbsentAsync(StoreLayout.BackupRecordKey(id), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.BackupRecord)),
            new ObjectMetadata(), CancellationToken.None);
    }

    private Task<ChainMaps?> ChooseAsync(string type, int versionNum = 170005, int blockSize = 8192) =>
        IncrementalReference.ChooseAsync(_store, type, SystemId, versionNum, blockSize, CancellationToken.None);

    [Fact]
    public async Task AnIncrBuildsOnTheNewestBackupADiffOnTheNewestFull()
    {
        await AddAsync("20261125T100000Z-aaaa01", 1);
        await AddAsync("20261125T110000Z-bbbb02", 2, BackupKinds.Incr, "20261125T100000Z-aaaa01");
        // Another cluster's, another major's and another page size's newer backups are not candidates.
        await AddAsync("20261125T120000Z-cccc03", 3, systemId: "8");
        await AddAsync("20261125T130000Z-dddd04", 4, versionNum: 160004);
        await AddAsync("20261125T140000Z-eeee05", 5, blockSize: 16384);

        Assert.Equal("20261125T110000Z-bbbb02", (await ChooseAsync(BackupKinds.Incr))!.Head.Id);
        Assert.Equal("20261125T100000Z-aaaa01", (await ChooseAsync(BackupKinds.Diff))!.Head.Id);
        Assert.Null(await ChooseAsync(BackupKinds.Full));
    }

    [Fact]
    public async Task WithoutAFittingBackupOrWithABrokenChainTheBackupIsFull()
    {
        Assert.Null(await ChooseAsync(BackupKinds.Incr));
        // An incr whose full is gone: nothing to build on.
        await AddAsync("20261125T110000Z-bbbb02", 2, BackupKinds.Incr, "20261125T100000Z-aaaa01");
        Assert.Null(await ChooseAsync(BackupKinds.Incr));
        Assert.Null(await ChooseAsync(BackupKinds.Diff));
    }

    [Fact]
    public async Task ABackupThatEndedAfterTheNewOneBeganIsNotBuiltOn()
    {
        // Records are read while pg_backup_start runs: one that ended after that start (another host's backup, or a clock
        // ahead) would make a chain that restore refuses ("a later one"); the one before it is built on instead.
        await AddAsync("20261125T100000Z-aaaa01", 1);
        await AddAsync("20261125T110000Z-bbbb02", 2, BackupKinds.Incr, "20261125T100000Z-aaaa01");
        var start = DateTimeOffset.UnixEpoch.AddHours(1.5);
        var chosen = await IncrementalReference.ChooseAsync(_store, BackupKinds.Incr, SystemId, 170005, 8192, CancellationToken.None, endedBy: start);
        Assert.Equal("20261125T100000Z-aaaa01", chosen!.Head.Id);
        Assert.Null(await IncrementalReference.ChooseAsync(_store, BackupKinds.Incr, SystemId, 170005, 8192, CancellationToken.None,
            endedBy: DateTimeOffset.UnixEpoch.AddHours(1)));
    }

    [Fact]
    public async Task AnUnreadableNewestRecordIsSkippedAndTheNextBuiltOn()
    {
        await AddAsync("20261125T100000Z-aaaa01", 1);
        await AddAsync("20261125T110000Z-bbbb02", 2, BackupKinds.Incr, "20261125T100000Z-aaaa01");
        // A planted record, newest of all by its id, that does not parse.
        await _store.PutIfAbsentAsync(StoreLayout.BackupRecordKey("20261125T120000Z-cccc03"), new MemoryStream("{ not json"u8.ToArray()),
            new ObjectMetadata(), CancellationToken.None);
        Assert.Equal("20261125T110000Z-bbbb02", (await ChooseAsync(BackupKinds.Incr))!.Head.Id);
    }

    [Fact]
    public async Task OfBackupsStartedInTheSameSecondTheOneThatEndedLastIsBuiltOn()
    {
        // Ids name the start to the second, then a random suffix: two backups of one second sort by chance.
        await AddAsync("20261125T100000Z-aaaa01", 1);
        await AddAsync("20261125T110000Z-ffff02", 2, BackupKinds.Incr, "20261125T100000Z-aaaa01");
        await AddAsync("20261125T110000Z-0000aa", 3, BackupKinds.Incr, "20261125T110000Z-ffff02");
        Assert.Equal("20261125T110000Z-0000aa", (await ChooseAsync(BackupKinds.Incr))!.Head.Id);
    }
}
