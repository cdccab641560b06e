using System.Text;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Storage;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// Client-side encryption end to end on one store kind: a marker written into the database is archived, backed up
/// and dumped, and no byte of the store holds it (nor does any object zstd-decompressed); then point-in-time
/// recovery, dump-restore and verify work with the key. One class per kind, so the three run side by side.
/// </summary>
public abstract class EncryptedArchiveTests(string kind)
{
    private const string Marker = "CAE-MARKER-71c4e09d";

    [Fact]
    public async Task NothingReadableInTheStoreAndEverythingRestoresWithTheKey()
    {
        var s = await BackupRestoreTests.StartSourceAsync("encrypted-" + kind, kind);
        var key = await EncryptionSetup.GenerateKeyAsync(s.Work);
        await File.AppendAllLinesAsync(s.Store.ConfigFile, [$"CLOUDARCHIVE_ENCRYPTION_KEY_FILE={key.Path}"]);
        await s.Cluster.SqlAsync($"insert into t select g, '{Marker} ' || g from generate_series(1, 2000) g");
        await s.Cluster.SqlAsync("select pg_switch_wal()");
        await BackupRestoreTests.BackupAsync(s);
        await s.Cluster.SqlAsync($"insert into t select g, '{Marker} later ' || g from generate_series(2001, 3000) g");
        // An incremental: its changed blocks and block maps are encrypted like everything else, and the restore below uses its chain.
        await IncrementalBackupTests.BackupOfTypeAsync(s, "incr");
        var expected = await s.Cluster.SqlAsync(BackupRestoreTests.TableHash);
        var target = await s.Cluster.SqlAsync("select now()");
        await Task.Delay(1100);
        await s.Cluster.SqlAsync("insert into t select g, 'after the target' from generate_series(3001, 3100) g");
        var dump = await BackupRestoreTests.CloudArchiveAsPostgres(s, "dump-push", "--dbname", "postgres");
        Assert.True(dump.ExitCode == 0, dump.ToString());
        await PointInTimeRecoveryTests.WaitForArchiveAsync(s.Cluster);
        await s.Cluster.StopAsync();

        // What the store holds: every object but the marker is an encrypted envelope, nothing of the plaintext shows.
        var raw = EncryptionSetup.RawBackend(s.Store);
        var objects = 0;
        await foreach (var item in raw.ListAsync("", CancellationToken.None))
        {
            var bytes = await EncryptionSetup.ReadAllAsync(raw, item.Key);
            var info = (await raw.GetInfoAsync(item.Key, CancellationToken.None))!;
            objects++;
            Assert.True(EncryptionSetup.Contains(bytes, Marker) is false, $"{item.Key} holds the marker in the clear");
            Assert.True(EncryptionSetup.Contains(await EncryptionSetup.TryZstdAsync(bytes), Marker) is false, $"{item.Key} holds the marker once zstd-decompressed");
            if (item.Key == Core.Manifest.StoreLayout.StoreMarkerKey) continue;
            // Version 2: bound to this store's archive id (store-init's, or the first encrypted write's into a new bucket prefix).
            Assert.True(bytes.AsSpan().StartsWith("CAENCv2\n"u8), $"{item.Key} is not encrypted and bound to the store's archive");
            Assert.Null(info.Metadata.Get("sha256"));
            Assert.Equal(key.Id, info.Metadata.Get("cakeyid"));
        }
        Assert.True(objects > 10, $"only {objects} objects in the store");

        // With the key: point-in-time recovery, a dump restore, verify.
        await using var restored = await BackupRestoreTests.RestoreAndStartAsync(s, "restored", ["--target-time", target]);
        Assert.Equal(expected, await restored.SqlAsync(BackupRestoreTests.TableHash));
        await restored.SqlAsync("create database from_dump");
        var restoredDump = await BackupRestoreTests.CloudArchiveAsPostgres(s, "dump-restore", "latest", "--source", "postgres",
            "--dbname", $"host={restored.Dir} port={restored.Port} dbname=from_dump", "--log", Path.Combine(s.Work, "dump.log"));
        Assert.True(restoredDump.ExitCode == 0, restoredDump.ToString());
        Assert.Equal("3100", await restored.SqlAsync("select count(*) from t", "from_dump"));
        var verify = await BackupRestoreTests.CloudArchiveAsPostgres(s, "verify", "--wal", "--dumps");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains($"encryption: key {key.Id} (", verify.Stdout);
        Assert.DoesNotContain("not encrypted", verify.Stdout);
        var status = await BackupRestoreTests.CloudArchiveAsPostgres(s, "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains($"encryption     key {key.Id} (3 records)", status.Stdout);
    }
}

/// <summary>Encryption end to end on a local directory.</summary>
public sealed class EncryptedLocalArchiveTests() : EncryptedArchiveTests("local");

/// <summary>Encryption end to end on S3 (Ceph RGW).</summary>
public sealed class EncryptedS3ArchiveTests() : EncryptedArchiveTests("s3");

/// <summary>Encryption end to end on Azure Blob (Azurite).</summary>
public sealed class EncryptedAzureArchiveTests() : EncryptedArchiveTests("azure");

/// <summary>The key rules on a local store, one process per step as PostgreSQL runs them.</summary>
public sealed class EncryptionKeyTests
{
    [Fact]
    public async Task KeyGenerateWritesAPrivateKeyAndNeverOverwritesOne()
    {
        var work = TestEnv.NewWorkDir("key-generate");
        var path = Path.Combine(work, "k");
        var first = await Cli.RunBareAsync(["key-generate", path]);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var text = await File.ReadAllTextAsync(path);
        Assert.Matches("^[0-9a-f]{64}\n$", text);

        var again = await Cli.RunBareAsync(["key-generate", path]);
        Expect.OneLineError(again, 2);
        Assert.Equal(text, await File.ReadAllTextAsync(path));
    }

    /// <summary>A key setting left empty (a secret not mounted, a blank variable) is a mistake, never "no encryption".</summary>
    [Theory]
    [InlineData("")]
    [InlineData(" , ")]
    public async Task AnEmptyKeySettingIsAnErrorNotPlaintext(string value)
    {
        var store = LocalStore.Create("empty-key", out var work);
        var segment = TestSegments.WriteSegment(Path.Combine(work, "src"), "000000010000000000000003", 3);

        var push = await store.Cli.RunAsync(["wal-push", segment], new Dictionary<string, string?> { ["CLOUDARCHIVE_ENCRYPTION_KEY_FILE"] = value }, null);
        var flag = await store.Cli.RunAsync("wal-push", segment, "--encryption-key-file", value);

        Assert.Contains("names no key file", Expect.OneLineError(push, 2));
        Assert.Contains("names no key file", Expect.OneLineError(flag, 2));
        Assert.Empty(store.VisibleFiles());
    }

    [Fact]
    public async Task AWrongOrMissingKeyStopsRecoveryAndWritesNothingAtTheDestination()
    {
        var store = LocalStore.Create("wrong-key", out var work);
        var a = await EncryptionSetup.GenerateKeyAsync(work, "a");
        var b = await EncryptionSetup.GenerateKeyAsync(work, "b");
        const string name = "000000010000000000000003";
        var segment = TestSegments.WriteSegment(Path.Combine(work, "src"), name, 3);
        await store.Cli.OkAsync("wal-push", segment, "--encryption-key-file", a.Path);

        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        await File.WriteAllTextAsync(Path.Combine(dataDir, "recovery.signal"), "");
        var destination = Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG");
        foreach (var keyArgs in new[] { new[] { "--encryption-key-file", b.Path }, [] })
        {
            var r = await store.Cli.RunAsync(["wal-fetch", name, destination, .. keyArgs], null, dataDir);
            Assert.True(r.ExitCode == 200, r.ToString());
            Assert.Contains(a.Id, r.Stderr);
            Assert.False(File.Exists(destination));
            Assert.Empty(Directory.GetFiles(Path.Combine(dataDir, "pg_wal")));
        }

        // Outside recovery: a configuration error (exit 2), one line naming the key.
        var plain = await store.Cli.RunAsync(["wal-fetch", name, Path.Combine(work, "out")]);
        Assert.Contains(a.Id, Expect.OneLineError(plain, 2));
        var withKey = await store.Cli.RunAsync(["wal-fetch", name, Path.Combine(work, "out"), "--encryption-key-file", $"{b.Path},{a.Path}"]);
        Assert.True(withKey.ExitCode == 0, withKey.ToString());
        Assert.Equal(await File.ReadAllBytesAsync(segment), await File.ReadAllBytesAsync(Path.Combine(work, "out")));
    }

    [Fact]
    public async Task WithEncryptionRequiredAPlantedPlainSegmentStopsRecovery()
    {
        var store = LocalStore.Create("encryption-required", out var work);
        var key = await EncryptionSetup.GenerateKeyAsync(work);
        const string name = "000000010000000000000004";
        // Written without the key: what someone with write access to the store, but not the key, can put there.
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "src"), name, 4));
        var dataDir = Path.Combine(work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        await File.WriteAllTextAsync(Path.Combine(dataDir, "recovery.signal"), "");
        var destination = Path.Combine(dataDir, "pg_wal", "RECOVERYXLOG");

        var required = await store.Cli.RunAsync(["wal-fetch", name, destination, "--encryption-key-file", key.Path, "--encryption-required"], null, dataDir);
        Assert.True(required.ExitCode == 200, required.ToString());
        Assert.Contains("not encrypted, and encryption is required", required.Stderr);
        Assert.False(File.Exists(destination));

        // Without the switch the same object is one written before encryption was turned on, and is read.
        var lenient = await store.Cli.RunAsync(["wal-fetch", name, destination, "--encryption-key-file", key.Path], null, dataDir);
        Assert.True(lenient.ExitCode == 0, lenient.ToString());
        var noKey = await store.Cli.RunAsync(["wal-fetch", name, Path.Combine(work, "x"), "--encryption-required"]);
        Expect.OneLineError(noKey, 2);
    }

    /// <summary>
    /// Two archives under one key (a company key shared by its clusters): whoever can write to one store plants the
    /// other's encrypted segment, object and record as they are. It opened before objects were bound to their store.
    /// </summary>
    [Fact]
    public async Task ASegmentCopiedInFromAnotherStoreUnderTheSameKeyIsRefusedAndNeverWritten()
    {
        var near = LocalStore.Create("bound-near", out var work);
        var far = new LocalStore(Path.Combine(work, "far"));
        var key = await EncryptionSetup.GenerateKeyAsync(work);
        const string ours = "000000010000000000000001", theirs = "000000010000000000000002";
        await near.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "near-src"), ours, 1), "--encryption-key-file", key.Path);
        await far.Cli.OkAsync("wal-push", TestSegments.WriteSegment(Path.Combine(work, "far-src"), theirs, 2), "--encryption-key-file", key.Path);

        foreach (var (from, to) in new[] { (far.ObjectPath(theirs), near.ObjectPath(theirs)), (far.RecordPath(theirs), near.RecordPath(theirs)) })
        {
            File.Copy(from, to);
            if (TestEnv.IsRoot) await Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", to));
        }

        var output = Path.Combine(work, "fetched");
        var planted = await near.Cli.RunAsync("wal-fetch", theirs, output, "--encryption-key-file", key.Path);
        // A store-side fault: restore_command's stop-recovery code, never "not archived" and never the bytes.
        Assert.True(planted.ExitCode == 200, planted.ToString());
        Assert.Contains("copied in from another store", planted.Stderr);
        Assert.False(File.Exists(output), "the planted segment was written at the destination");
        // The store's own segment still opens, and the other store still reads its own.
        await near.Cli.OkAsync("wal-fetch", ours, Path.Combine(work, "ours"), "--encryption-key-file", key.Path);
        await far.Cli.OkAsync("wal-fetch", theirs, Path.Combine(work, "theirs"), "--encryption-key-file", key.Path);
    }

    [Fact]
    public async Task TurningEncryptionOnKeepsOldObjectsReadableAndRewritesNothing()
    {
        var store = LocalStore.Create("encryption-on", out var work);
        var key = await EncryptionSetup.GenerateKeyAsync(work);
        var old = TestSegments.WriteSegment(Path.Combine(work, "src"), "000000010000000000000001", 1);
        var fresh = TestSegments.WriteSegment(Path.Combine(work, "src"), "000000010000000000000002", 2);
        await store.Cli.OkAsync("wal-push", old);
        var before = await File.ReadAllBytesAsync(store.ObjectPath("000000010000000000000001"));
        await store.Cli.OkAsync("wal-push", fresh, "--encryption-key-file", key.Path);
        // The old segment pushed again, now with the key: identical content, so nothing is written.
        await store.Cli.OkAsync("wal-push", old, "--encryption-key-file", key.Path);

        Assert.Equal(before, await File.ReadAllBytesAsync(store.ObjectPath("000000010000000000000001")));
        foreach (var (name, path) in new[] { ("000000010000000000000001", old), ("000000010000000000000002", fresh) })
        {
            var output = Path.Combine(work, "out-" + name);
            await store.Cli.OkAsync("wal-fetch", name, output, "--encryption-key-file", key.Path);
            Assert.Equal(await File.ReadAllBytesAsync(path), await File.ReadAllBytesAsync(output));
        }
        var list = await store.Cli.OkAsync("wal-list");
        Assert.Contains("000000010000000000000001 - 000000010000000000000002", list.Stdout);
    }

    [Fact]
    public async Task SixteenRacingPushesOfOneEncryptedNameHaveExactlyOneWinner()
    {
        const int pushers = 16;
        var store = LocalStore.Create("encrypted-race", out var work);
        var key = await EncryptionSetup.GenerateKeyAsync(work);
        const string name = "000000010000000000000007";
        var paths = Enumerable.Range(0, pushers).Select(i => TestSegments.WriteSegment(Path.Combine(work, $"p{i}"), name, 100 + i)).ToArray();

        var results = await Task.WhenAll(paths.Select(p => store.Cli.RunAsync("wal-push", p, "--encryption-key-file", key.Path)));

        var report = string.Join("\n", results.Select((r, i) => $"pusher {i}: {r}"));
        Assert.True(results.Count(r => r.ExitCode == 0) == 1, report);
        Assert.True(results.Count(r => r.ExitCode == 3) == pushers - 1, report);
        var winner = Array.FindIndex(results, r => r.ExitCode == 0);
        var fetched = Path.Combine(work, "fetched");
        await store.Cli.OkAsync("wal-fetch", name, fetched, "--encryption-key-file", key.Path);
        Assert.Equal(await File.ReadAllBytesAsync(paths[winner]), await File.ReadAllBytesAsync(fetched));
    }
}

/// <summary>Keys and a raw view of the store for the encryption tests.</summary>
internal static class EncryptionSetup
{
    internal sealed record Key(string Path, string Id);

    /// <summary>A key made by key-generate, owned by the cluster owner, as an operator makes it.</summary>
    public static async Task<Key> GenerateKeyAsync(string work, string name = "archive.key")
    {
        var path = Path.Combine(work, name);
        var r = await Proc.AsPostgresAsync([TestEnv.Binary, "key-generate", path]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var id = System.Text.RegularExpressions.Regex.Match(r.Stdout, "key ([0-9a-f]{16})").Groups[1].Value;
        Assert.Equal(16, id.Length);
        return new Key(path, id);
    }

    /// <summary>The store's backend itself, without the encryption layer: what anyone with the bucket sees.</summary>
    public static IObjectStore RawBackend(TestStore store)
    {
        var settings = File.ReadAllLines(store.ConfigFile).Where(l => l.Contains('=')).ToDictionary(l => l[..l.IndexOf('=')], l => l[(l.IndexOf('=') + 1)..]);
        return StoreFactory.OpenBackend(store.Url, s => settings.TryGetValue(s.Variable, out var v) ? v : Environment.GetEnvironmentVariable(s.Variable));
    }

    public static async Task<byte[]> ReadAllAsync(IObjectStore store, string key)
    {
        await using var obj = (await store.OpenReadAsync(key, CancellationToken.None))!;
        using var buffer = new MemoryStream();
        await obj.Content.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>The object zstd-decompressed as far as it decodes (nothing for what is not zstd).</summary>
    public static async Task<byte[]> TryZstdAsync(byte[] bytes)
    {
        using var output = new MemoryStream();
        try
        {
            await using var zstd = ZstdPipeline.OpenDecompressor(new MemoryStream(bytes));
            await zstd.CopyToAsync(output);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Ciphertext is not zstd: what decoded before the failure is what there is to search.
        }
        return output.ToArray();
    }

    public static bool Contains(byte[] haystack, string needle) => haystack.AsSpan().IndexOf(Encoding.ASCII.GetBytes(needle)) >= 0;
}
