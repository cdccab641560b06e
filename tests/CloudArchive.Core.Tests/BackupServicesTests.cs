using System.Security.Cryptography;
using System.Text.Json;
using CloudArchive.Core.Backup;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>
/// restore and verify on the in-memory store: a backup as backup-push leaves it (a zstd tar bundle and its record,
/// its WAL archived) restores file for file, and a bundle someone replaced is caught by both, not restored.
/// </summary>
public sealed class BackupServicesTests : IDisposable
{
    private const long SegmentSize = 1 << 20;
    private const string Id = "20261125T100000Z-cafe01";
    private readonly string _dir = Directory.CreateTempSubdirectory("backup-services-").FullName;

    private static readonly Dictionary<string, byte[]> Files = new(StringComparer.Ordinal)
    {
        ["PG_VERSION"] = "15\n"u8.ToArray(),
        ["base/1/16384"] = RandomNumberGenerator.GetBytes(40_000),
        ["global/pg_control"] = RandomNumberGenerator.GetBytes(8192),
    };

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Seg(int n) => WalFileName.ForSegment(1, (ulong)n, SegmentSize).Name;

    /// <summary>Segments 1-3 archived and backup <see cref="Id"/> of <see cref="Files"/> spanning segment 2.</summary>
    private async Task<InMemoryObjectStore> BackupAsync(Dictionary<string, byte[]>? bundleFiles = null)
    {
        var store = new InMemoryObjectStore();
        var wal = new WalArchive(store, 1);
        for (var n = 1; n <= 3; n++)
        {
            var bytes = new byte[SegmentSize];
            WalSegmentHeader.For(WalFileName.Parse(Seg(n)), 7, (uint)SegmentSize).WriteTo(bytes);
            var path = Path.Combine(_dir, Seg(n));
            await File.WriteAllBytesAsync(path, bytes);
            await wal.PushAsync(path, CancellationToken.None);
        }
        // The record lists what was backed up; the bundle in the store holds bundleFiles (someone may have replaced it).
        var written = await BundleAsync(store, Files);
        if (bundleFiles is not null)
        {
            var replaced = new InMemoryObjectStore();
            await BundleAsync(replaced, bundleFiles);
            await store.DeleteAsync(written.Bundle.Key, CancellationToken.None);
            await using var tampered = (await replaced.OpenReadAsync(written.Bundle.Key, CancellationToken.None))!;
            await store.PutIfAbsentAsync(written.Bundle.Key, tampered.Content, new ObjectMetadata(), CancellationToken.None);
        }
        var record = new BackupRecord
        {
            Id = Id, SystemIdentifier = "7", ServerVersionNum = 150000, Timeline = 1,
            StartLsn = new Lsn((ulong)(2 * SegmentSize) + 40).ToString(), StopLsn = new Lsn((ulong)(2 * SegmentSize) + 256).ToString(),
            StartWalFile = Seg(2), StopWalFile = Seg(2), StartTime = DateTimeOffset.UnixEpoch, StopTime = DateTimeOffset.UnixEpoch.AddMinutes(1),
            WalSegmentSize = SegmentSize, BackupLabel = "START WAL LOCATION: 0/200028 (file " + Seg(2) + ")\n", Compression = "zstd",
            Size = written.Bundle.Size, StoredSize = written.Bundle.StoredSize, Bundles = [written.Bundle], Entries = [.. written.Entries],
            BlockSize = BlockMap.DefaultBlockSize,
            Tablespaces = [],
        };
        await store.PutIfAbsentAsync(StoreLayout.BackupRecordKey(Id), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.BackupRecord)),
            new ObjectMetadata(), CancellationToken.None);
        return store;
    }

    /// <summary>Bundle 0 of backup <see cref="Id"/> holding <paramref name="files"/> (under their directories), as backup-push writes it.</summary>
    private async Task<WrittenBundle> BundleAsync(IObjectStore store, Dictionary<string, byte[]> files)
    {
        var source = Path.Combine(_dir, "pgdata-" + Guid.NewGuid().ToString("N"));
        return await new BundleWriter(store, Id, 1, BlockMap.DefaultBlockSize).WriteAsync(0, async bundle =>
        {
            foreach (var dir in new[] { "base", "base/1", "global" }) await bundle.AddDirectoryAsync(dir, 0x1c0, CancellationToken.None);
            foreach (var (path, content) in files)
            {
                var file = Path.Combine(source, path);
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                await File.WriteAllBytesAsync(file, content);
                await using var read = File.OpenRead(file);
                await bundle.AddFileAsync(path, 0x180, read, content.Length, CancellationToken.None);
            }
        }, CancellationToken.None);
    }

    private async Task<RestoreResult> RestoreAsync(IObjectStore store, string to)
    {
        var sequence = await RestoreSequence.PlanAsync(store, new RecoveryTarget(TargetKind.Immediate, null), null, CancellationToken.None);
        sequence.LayOut(to, new Dictionary<string, string>(), tablespacesInPlace: false);
        return await sequence.RestoreAsync(new RestoreSettings("cloudarchive wal-fetch %f %p", null) { Jobs = 2 }, null, CancellationToken.None);
    }

    [Fact]
    public async Task ABackupRestoresFileForFileWithRecoveryConfiguredAndALease()
    {
        var store = await BackupAsync();
        var to = Path.Combine(_dir, "restored");

        var result = await RestoreAsync(store, to);

        Assert.Equal(Files.Count, result.Files);
        foreach (var (path, content) in Files)
            Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(to, path)));
        Assert.True(File.Exists(Path.Combine(to, "recovery.signal")));
        Assert.Contains("restore_command = 'cloudarchive wal-fetch %f %p'", await File.ReadAllTextAsync(Path.Combine(to, "postgresql.auto.conf")));
        Assert.Contains("recovery_target = 'immediate'", result.ConfigLines);
        Assert.Contains(store.Keys, k => k.StartsWith($"leases/{Id}/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheRestoreSequenceReportsTheWholeClusterToItsProgressAndRefusesToWriteBeforeItIsLaidOut()
    {
        var store = await BackupAsync();
        var sequence = await RestoreSequence.PlanAsync(store, new RecoveryTarget(TargetKind.Immediate, null), null, CancellationToken.None);
        var settings = new RestoreSettings("cloudarchive wal-fetch %f %p", "promote") { Jobs = 2, Sync = false };

        await Assert.ThrowsAsync<InvalidOperationException>(() => sequence.RestoreAsync(settings, null, CancellationToken.None));

        var work = Path.Combine(_dir, "drill");
        sequence.LayOutPrivately(work);
        var totals = new List<(string Label, long Total)>();
        var result = await sequence.RestoreAsync(settings, (label, total) => { totals.Add((label, total)); return null; }, CancellationToken.None);

        Assert.Equal([("restore", Files.Values.Sum(f => (long)f.Length))], totals);
        Assert.Equal(Path.Combine(work, "data"), result.DataDirectory);
        Assert.Equal(Files["base/1/16384"], await File.ReadAllBytesAsync(Path.Combine(work, "data", "base/1/16384")));
        Assert.Contains("recovery_target_action = 'promote'", result.ConfigLines);
    }

    [Theory]
    [InlineData("relative=/new")]
    [InlineData("/old=")]
    [InlineData("/old")]
    [InlineData("/old=new")]
    public void ATablespaceMapThatIsNotTwoAbsolutePathsIsAUsageErrorNamingIt(string pair)
    {
        var e = Assert.Throws<CloudArchiveException>(() => RestoreSequence.ParseTablespaceMap([pair]));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains(pair, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATablespaceMappedTwiceIsRefusedRatherThanTheLastOneWinning()
    {
        Assert.Equal("/b", RestoreSequence.ParseTablespaceMap(["/a=/b"])["/a"]);
        var e = Assert.Throws<CloudArchiveException>(() => RestoreSequence.ParseTablespaceMap(["/a=/b", "/a=/c"]));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
    }

    [Fact]
    public async Task VerifyFindsNothingWrongWithAnIntactBackup()
    {
        var store = await BackupAsync();

        var report = await new ArchiveVerifier(store, 2).VerifyAsync(null, wal: true, dumps: false, CancellationToken.None);

        Assert.Empty(report.Problems);
        Assert.True(report.Objects >= 4, $"verify read {report.Objects} objects");
    }

    [Fact]
    public async Task AReplacedBundleIsReportedByVerifyAndNeverRestored()
    {
        // Someone with write access put a bundle whose relation file differs from what the record lists.
        var tampered = new Dictionary<string, byte[]>(Files) { ["base/1/16384"] = RandomNumberGenerator.GetBytes(40_000) };
        var store = await BackupAsync(tampered);

        var report = await new ArchiveVerifier(store, 2).VerifyAsync(null, wal: false, dumps: false, CancellationToken.None);
        Assert.Contains(report.Problems, p => p.Contains("base/1/16384", StringComparison.Ordinal));

        var to = Path.Combine(_dir, "restored");
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => RestoreAsync(store, to));
        Assert.Equal(ExitCode.Corrupt, e.ExitCode);
        Assert.Contains("base/1/16384", e.Message);
        Assert.False(File.Exists(Path.Combine(to, "recovery.signal")), "a restore that found a corrupt file must not leave a server ready to start");
    }
}
