using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// --fallback-store: a restore from a first store that lost one WAL segment and holds another corrupt, and a corrupt bundle
/// of the backup, reads them from the second copy (made by copy), and the restored server has every row; so does a
/// dump-restore of a dump corrupt in the first store, and a restore once the first store was emptied.
/// </summary>
public sealed class FallbackTests
{
    [Fact]
    public async Task ARestoreReadsWalMissingOrCorruptInTheFirstStoreFromTheSecond()
    {
        var s = await StartSourceAsync("fallback", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("insert into t select g, 'before the backup ' || g from generate_series(1, 1000) g");
        await BackupAsync(s);
        for (var round = 0; round < 3; round++)
        {
            await s.Cluster.SqlAsync($"insert into t select g, 'round {round} ' || g from generate_series({2000 + round * 1000}, {2999 + round * 1000}) g");
            await s.Cluster.SqlAsync("select pg_switch_wal()");
        }
        var expected = await s.Cluster.SqlAsync(TableHash);
        var dump = await CloudArchiveAsPostgres(s, "dump-push", "--dbname", "postgres");
        Assert.True(dump.ExitCode == 0, dump.ToString());
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();
        var b = CopyTests.SecondStore("s3", Path.Combine(s.Work, "second"));
        var copy = await CopyTests.CopyAsync(s, b);
        Assert.True(copy.ExitCode == 0, copy.ToString());

        // The first store loses one segment and holds another corrupt: both are after the backup, so recovery needs them.
        var a = new LocalStore(new Uri(s.Store.Url).LocalPath, create: false);
        var segments = Directory.GetFiles(Path.Combine(a.Dir, "wal", "00000001"), "*.zst").Select(f => Path.GetFileName(f)[..^4])
            .Where(n => n.Length == 24).Order(StringComparer.Ordinal).ToList();
        var (missing, corrupt) = (segments[^2], segments[^1]);
        File.Delete(a.ObjectPath(missing));
        var bytes = await File.ReadAllBytesAsync(a.ObjectPath(corrupt));
        bytes[^9] ^= 0x20;
        await File.WriteAllBytesAsync(a.ObjectPath(corrupt), bytes);
        var bundle = Directory.GetFiles(Path.Combine(a.Dir, "backups"), "*.tar.zst", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First();
        bytes = await File.ReadAllBytesAsync(bundle);
        bytes[bytes.Length / 2] ^= 0x20;
        await File.WriteAllBytesAsync(bundle, bytes);
        var dumpObject = Directory.GetFiles(Path.Combine(a.Dir, "dumps"), "dump.zst", SearchOption.AllDirectories).Single();
        bytes = await File.ReadAllBytesAsync(dumpObject);
        bytes[bytes.Length / 2] ^= 0x20;
        await File.WriteAllBytesAsync(dumpObject, bytes);
        var verify = await CloudArchiveAsPostgres(s, "verify");
        Assert.True(verify.ExitCode == 5, verify.ToString());
        var into = TestEnv.SharedDir(s.Work, "fetched");
        var alone = await CloudArchiveAsPostgres(s, "wal-fetch", missing, Path.Combine(into, missing));
        var both = await CloudArchiveAsPostgres(s, "wal-fetch", missing, Path.Combine(into, missing), "--fallback-config", b.ConfigFile);
        Assert.True(alone.ExitCode == 200, alone.ToString());
        Assert.True(both.ExitCode == 0, both.ToString());
        Assert.Contains($"is not in {s.Store.Url}: read from {b.Url}", both.Stderr);

        await using var restored = await RestoreAndStartAsync(s, "restored", ["--fallback-config", b.ConfigFile]);

        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        await restored.SqlAsync("create database from_dump");
        var target = $"host={restored.Dir} port={restored.Port} dbname=from_dump";
        var dumpAlone = await CloudArchiveAsPostgres(s, "dump-restore", "latest", "--source", "postgres", "--dbname", target);
        Assert.True(dumpAlone.ExitCode == 5, dumpAlone.ToString());
        var dumpBoth = await CloudArchiveAsPostgres(s, "dump-restore", "latest", "--source", "postgres", "--dbname", target, "--fallback-config", b.ConfigFile);
        Assert.True(dumpBoth.ExitCode == 0, dumpBoth.ToString());
        Assert.Contains($"from {b.Url}", dumpBoth.Stderr);
        Assert.Equal(expected, await restored.SqlAsync(TableHash, "from_dump"));
        var log = restored.ServerLog;
        Assert.Contains($"wal/00000001/{missing}.zst is not in {s.Store.Url}: read from {b.Url}", log);
        Assert.Contains($"reading wal/00000001/{corrupt}.zst from {b.Url}", log);
        Secrets.AssertNoneIn(log);
        await restored.StopAsync();

        // The first store emptied by someone holding its keys (its marker left: a store that answers, and has nothing): all from the second.
        foreach (var entry in Directory.EnumerateFileSystemEntries(a.Dir).Where(e => Path.GetFileName(e) != Core.Manifest.StoreLayout.StoreMarkerKey))
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else File.Delete(entry);
        await using var fromSecond = await RestoreAndStartAsync(s, "restored-emptied", ["--fallback-config", b.ConfigFile]);
        Assert.Equal(expected, await fromSecond.SqlAsync(TableHash));
    }
}
