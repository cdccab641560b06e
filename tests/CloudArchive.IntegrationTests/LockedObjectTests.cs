using System.Net;
using System.Text.Json;
using Amazon.S3;
using Amazon.S3.Model;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Manifest;
using CloudArchive.Storage;
using CloudArchive.Storage.S3;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// --lock-days on the Ceph RGW test server: a bucket made with Object Lock (the test makes its own) holds every object
/// archive_command and backup-push write locked, refuses a locked version's DELETE, and a second writer's version (RGW takes
/// a PUT without a condition beside the first) is a conflict for wal-push and never served: wal-fetch and a restore read the
/// first version, rows compared. expire keeps the locked objects and says until when; store-check, status and verify report
/// the locks. Bad lock settings, and a store that cannot hold locks, are refused before anything is written.
/// </summary>
public sealed class LockedObjectTests
{
    private static readonly string[] Lock = ["--lock-days", "1", "--lock-mode", "governance"];

    private static IAmazonS3 RawS3() =>
        new S3StoreSettings(TestStore.S3Endpoint, "us-east-1", true, false, null, null, null, TlsTrust.Load(TestStore.CaFile, SettingsTable.S3CaFile)).CreateClient();

    /// <summary>A new bucket made with Object Lock (its objects stay a day: the test server is throwaway).</summary>
    private static async Task<string> LockBucketAsync(IAmazonS3 raw)
    {
        var bucket = "ca-lock-" + Guid.NewGuid().ToString("N")[..12];
        await raw.PutBucketAsync(new PutBucketRequest { BucketName = bucket, ObjectLockEnabledForBucket = true });
        return bucket;
    }

    private static async Task<List<string>> KeysAsync(IAmazonS3 raw, string bucket, string prefix)
    {
        var keys = new List<string>();
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = prefix };
        ListObjectsV2Response page;
        do
        {
            page = await raw.ListObjectsV2Async(request);
            keys.AddRange((page.S3Objects ?? []).Select(o => o.Key));
            request.ContinuationToken = page.NextContinuationToken;
        }
        while (page.IsTruncated == true);
        return keys;
    }

    [Fact]
    public async Task OnAnObjectLockBucketArchiveAndBackupsAreLockedAndASecondWriterIsNeverServed()
    {
        using var raw = RawS3();
        var bucket = await LockBucketAsync(raw);
        var work = TestEnv.NewWorkDir("locked-s3");
        var store = TestStore.Create("s3", work, container: bucket);
        var prefix = new Uri(store.Url).AbsolutePath.Trim('/') + "/";
        var cluster = await PgCluster.InitAsync(Path.Combine(work, "source"), "archive_mode = on",
            $"archive_command = '{TestEnv.Binary} wal-push %p {store.Args} {string.Join(' ', Lock)}'");
        await using var _ = cluster;
        await cluster.StartAsync();
        var s = new Source(work, store, cluster);
        await cluster.SqlAsync("create table t (id int primary key, note text)");
        await cluster.SqlAsync("insert into t select g, 'before the first backup ' || g from generate_series(1, 1000) g");
        var first = await CloudArchiveAsPostgres(s, ["backup-push", .. Lock]);
        Assert.True(first.ExitCode == 0, first.ToString());
        var firstId = first.Stdout.Split(' ', ':')[1];
        await cluster.SqlAsync("insert into t select g, 'before the second ' || g from generate_series(2000, 2999) g");
        var second = await CloudArchiveAsPostgres(s, ["backup-push", .. Lock]);
        Assert.True(second.ExitCode == 0, second.ToString());
        await cluster.SqlAsync("insert into t select g, 'after the backups ' || g from generate_series(3000, 3999) g");
        await cluster.SqlAsync("select pg_switch_wal()");
        var expected = await cluster.SqlAsync(TableHash);
        var systemId = ulong.Parse(await cluster.SqlAsync("select system_identifier from pg_control_system()"), System.Globalization.CultureInfo.InvariantCulture);
        await PointInTimeRecoveryTests.WaitForArchiveAsync(cluster);
        await cluster.StopAsync();

        // Every object written (WAL, bundles, maps, records, the marker) is locked, by the server's own answer.
        var keys = await KeysAsync(raw, bucket, prefix);
        Assert.Contains(keys, k => k.StartsWith(prefix + "wal/", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith(prefix + "backups/", StringComparison.Ordinal));
        foreach (var key in keys)
        {
            var retention = (await raw.GetObjectRetentionAsync(new GetObjectRetentionRequest { BucketName = bucket, Key = key })).Retention;
            Assert.True(retention.Mode == ObjectLockRetentionMode.Governance, key);
            Assert.True(retention.RetainUntilDate!.Value.ToUniversalTime() > DateTime.UtcNow.AddHours(23), key);
        }

        // The server refuses the DELETE of a locked version (the archive's own keys, no bypass).
        var lastWal = keys.Where(k => k.StartsWith(prefix + "wal/00000001/", StringComparison.Ordinal) && k.EndsWith(".zst", StringComparison.Ordinal)
            && k.Length == prefix.Length + "wal/00000001/".Length + 24 + 4).Order(StringComparer.Ordinal).Last();
        var version = (await raw.ListVersionsAsync(new ListVersionsRequest { BucketName = bucket, Prefix = lastWal })).Versions.Single().VersionId;
        var denied = await Assert.ThrowsAsync<AmazonS3Exception>(() => raw.DeleteObjectAsync(new DeleteObjectRequest { BucketName = bucket, Key = lastWal, VersionId = version }));
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);

        // A second writer plants other bytes under the last segment recovery needs, without a condition: RGW takes them as a second version.
        await raw.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = lastWal, InputStream = new MemoryStream(new byte[4096]) });
        Assert.Equal(2, (await raw.ListVersionsAsync(new ListVersionsRequest { BucketName = bucket, Prefix = lastWal })).Versions.Count);

        // wal-push of other content under an existing name: the store takes it as a version, the oldest-version rule refuses it (exit 3).
        var segmentName = lastWal[^28..^4];
        var pgWal = TestEnv.SharedDir(work, "other");
        var conflict = await CloudArchiveAsPostgres(s, ["wal-push", TestSegments.WriteSegment(pgWal, segmentName, 9, systemId: systemId), .. Lock]);
        Expect.Exit(conflict, 3);
        Assert.Contains("is already archived in " + store.Url + " with different content; refusing to overwrite it", conflict.Stderr);
        Assert.Equal(3, (await raw.ListVersionsAsync(new ListVersionsRequest { BucketName = bucket, Prefix = lastWal })).Versions.Count);
        var fetched = Path.Combine(TestEnv.SharedDir(work, "fetched"), segmentName);
        var fetch = await CloudArchiveAsPostgres(s, "wal-fetch", segmentName, fetched);
        Assert.True(fetch.ExitCode == 0, fetch.ToString());

        // status and verify show the lock horizon of what they read.
        var status = await CloudArchiveAsPostgres(s, "status");
        Assert.Matches(@"locks +\d+ objects read are locked, until \d{4}-\d\d-\d\d [\d:]+Z \(earliest\)", status.Stdout);
        var verify = await CloudArchiveAsPostgres(s, "verify", "--wal", "--json");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        var locks = JsonDocument.Parse(verify.Stdout).RootElement.GetProperty("locks");
        Assert.True(locks.GetProperty("locked").GetInt32() >= keys.Count(k => k.Contains("/wal/", StringComparison.Ordinal)) / 2, verify.Stdout);
        Assert.True(locks.GetProperty("earliest").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddHours(23), verify.Stdout);

        // expire's plan keeps the locked objects and says until when; a real run removes nothing and fails nothing.
        foreach (var dry in new[] { true, false })
        {
            var expire = await CloudArchiveAsPostgres(s, dry ? ["expire", "--retain-full", "1", "--dry-run"] : ["expire", "--retain-full", "1"]);
            Assert.True(expire.ExitCode == 0, expire.ToString());
            Assert.Contains($"locked {StoreLayout.BackupRecordKey(firstId)} until ", expire.Stdout);
            Assert.Matches(@"expire keeps \d+ objects locked until \d{4}-", expire.Stdout);
            Assert.DoesNotContain("REFUSED", expire.Stdout);
        }
        Assert.Equal(keys.Order(StringComparer.Ordinal), (await KeysAsync(raw, bucket, prefix)).Order(StringComparer.Ordinal));

        // store-check on the bucket: versioning and Object Lock reported, and the conditional put proven by the oldest-version rule.
        var check = await CloudArchiveAsPostgres(s, ["store-check", .. Lock]);
        Assert.True(check.ExitCode == 0, check.ToString());
        Assert.Contains("conditional write  honoured", check.Stdout);
        Assert.Contains("versioning         Enabled: the store may take a second write of a key as a new version; the probe's second writer was refused", check.Stdout);
        Assert.Contains("locks              Object Lock enabled on the bucket", check.Stdout);
        Assert.Contains("lock in force      governance lock of 1 days", check.Stdout);
        Assert.Contains("probes kept", check.Stdout);

        // The restore reads the first version of the planted segment: every row.
        await using var restored = await RestoreAndStartAsync(s, "restored", []);
        Assert.Equal(expected, await restored.SqlAsync(TableHash));
        Secrets.AssertNoneIn(restored.ServerLog);
    }

    [Fact]
    public async Task BadLockSettingsAndAStoreThatCannotHoldLocksAreRefusedBeforeAnythingIsWritten()
    {
        var work = TestEnv.NewWorkDir("locked-bad");
        var segment = TestSegments.WriteSegment(TestEnv.SharedDir(work, "pg_wal"), "000000010000000000000001", 1);
        var s3 = TestStore.Create("s3", TestEnv.SharedDir(work, "s3"));
        foreach (var bad in new[] { new[] { "--lock-days", "-1" }, ["--lock-days", "ten"], ["--lock-days", "36501"], ["--lock-days", "1", "--lock-mode", "legal-hold"] })
            Expect.OneLineError(await s3.RunAsync(["wal-push", segment, .. bad]), 2);
        Expect.OneLineError(await s3.RunAsync(["wal-push", segment], new Dictionary<string, string?> { ["CLOUDARCHIVE_LOCK_DAYS"] = "1.5" }, null), 2);

        // The shared test bucket was made without Object Lock: refused at the first write, nothing written unlocked.
        var noLock = Expect.OneLineError(await s3.RunAsync(["wal-push", segment, "--lock-days", "1"]), 2);
        Assert.Contains("has no Object Lock", noLock);
        using var raw = RawS3();
        var url = new Uri(s3.Url);
        Assert.Empty(await KeysAsync(raw, url.Host, url.AbsolutePath.Trim('/') + "/"));

        var local = TestStore.Create("local", TestEnv.SharedDir(work, "local"));
        Assert.Contains("cannot hold", Expect.OneLineError(await local.RunAsync(["wal-push", segment, "--lock-days", "1"]), 2));
        // Azurite has no version-level immutability (its containers say so): refused the same way.
        var azure = TestStore.Create("azure", TestEnv.SharedDir(work, "azure"));
        Assert.Contains("no version-level immutability support", Expect.OneLineError(await azure.RunAsync(["wal-push", segment, "--lock-days", "1"]), 2));
        Assert.Contains("no version-level immutability support", Expect.OneLineError(await azure.RunAsync(["store-check", "--lock-days", "1"]), 2));
    }

    [Fact]
    public async Task TheLockOfACopysDestinationConfigFileAppliesToThatStoreOnly()
    {
        using var raw = RawS3();
        var bucket = await LockBucketAsync(raw);
        var work = TestEnv.NewWorkDir("locked-copy");
        var a = TestStore.Create("local", TestEnv.SharedDir(work, "a"));
        var segment = TestSegments.WriteSegment(TestEnv.SharedDir(work, "pg_wal"), "000000010000000000000001", 1);
        var push = await a.RunAsync("wal-push", segment);
        Assert.True(push.ExitCode == 0, push.ToString());
        var b = TestStore.Create("s3", TestEnv.SharedDir(work, "b"), container: bucket);
        await File.AppendAllLinesAsync(b.ConfigFile, ["CLOUDARCHIVE_LOCK_DAYS=1", "CLOUDARCHIVE_LOCK_MODE=compliance"]);

        // A is a local store: had B's lock reached it, opening it would be refused (exit 2).
        var copy = await a.RunAsync("copy", "--to-config", b.ConfigFile);

        Assert.True(copy.ExitCode == 0, copy.ToString());
        var prefix = new Uri(b.Url).AbsolutePath.Trim('/') + "/";
        var keys = await KeysAsync(raw, bucket, prefix);
        Assert.Contains(keys, k => k.StartsWith(prefix + "wal/", StringComparison.Ordinal));
        foreach (var key in keys)
            Assert.True((await raw.GetObjectRetentionAsync(new GetObjectRetentionRequest { BucketName = bucket, Key = key })).Retention.Mode
                == ObjectLockRetentionMode.Compliance, key);
    }
}
