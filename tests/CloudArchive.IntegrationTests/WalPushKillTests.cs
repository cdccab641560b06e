using System.Diagnostics;
using System.Text.Json;
using CloudArchive.Core.Wal;
using Xunit.Abstractions;

namespace CloudArchive.IntegrationTests;

/// <summary>A push killed with SIGKILL at any point leaves nothing half-written in view, and PostgreSQL's retry succeeds.</summary>
public sealed class WalPushKillTests(ITestOutputHelper output)
{
    private const int SegmentSize = 64 * 1024 * 1024;
    private const int Rounds = 25;

    [Fact]
    public async Task APushKilledAtAnyPointLeavesOnlyCompleteObjects()
    {
        var work = TestEnv.NewWorkDir("push-kill");
        var store = new LocalStore(Path.Combine(work, "store"));
        await store.Cli.OkAsync("store-init"); // an existing, empty store: wal-list works before the first push
        var input = Path.Combine(work, "pg_wal");
        var restore = Path.Combine(work, "restore");
        TestEnv.CreateDirectory(restore);

        // How long an uninterrupted push of a 64 MiB segment takes here: the kills are spread over that.
        var calibration = new LocalStore(Path.Combine(work, "calibration"));
        var normal = TimeSpan.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var name = WalFileName.ForSegment(1, (ulong)(100 + i), SegmentSize).Name;
            var path = TestSegments.WriteSegment(input, name, seed: 100 + i, size: SegmentSize);
            var r = await calibration.Cli.OkAsync("wal-push", path);
            normal = r.Elapsed < normal ? r.Elapsed : normal;
            File.Delete(path);
        }
        Directory.Delete(calibration.Dir, recursive: true);
        output.WriteLine($"an uninterrupted push takes {normal.TotalMilliseconds:0} ms");

        var seed = Environment.TickCount;
        output.WriteLine($"random seed {seed}");
        var random = new Random(seed);
        var expected = new Dictionary<string, string>(); // visible file -> SHA-256 of the WAL file it holds
        var seen = new Dictionary<string, (long Length, DateTime Written)>();
        var killedEarly = 0;
        var outcomes = new List<string>();

        for (var round = 1; round <= Rounds; round++)
        {
            var name = WalFileName.ForSegment(1, (ulong)round, SegmentSize).Name;
            var segment = TestSegments.Segment(name, seed: round, size: SegmentSize);
            var sha = TestSegments.Sha256(segment);
            var path = TestSegments.Write(input, name, segment);
            var objectFile = Path.GetRelativePath(store.Dir, store.ObjectPath(name));
            var recordFile = Path.GetRelativePath(store.Dir, store.RecordPath(name));

            var delay = TimeSpan.FromMilliseconds(random.NextDouble() * normal.TotalMilliseconds);
            var exit = await PushAndKillAsync(store, path, delay);
            if (exit != 0) killedEarly++;

            // Nothing but complete objects in view: earlier files untouched, this round's files only whole.
            var visible = store.VisibleFiles();
            var unexpected = visible.Except(expected.Keys).Except([objectFile, recordFile]).ToList();
            Assert.True(unexpected.Count == 0, $"round {round}: debris in the store: {string.Join(", ", unexpected)}");
            foreach (var (file, state) in seen)
                Assert.Equal(state, (new FileInfo(Path.Combine(store.Dir, file)).Length, File.GetLastWriteTimeUtc(Path.Combine(store.Dir, file))));
            var hasObject = visible.Contains(objectFile);
            var hasRecord = visible.Contains(recordFile);
            Assert.False(hasRecord && !hasObject, $"round {round}: the manifest lists {name} but its object is missing");
            outcomes.Add($"round {round}: killed after {delay.TotalMilliseconds:0} ms, exit {exit}, object {hasObject}, record {hasRecord}");
            if (hasObject) await AssertFetchesAsync(store, name, sha, restore, $"round {round}, after the kill");
            if (hasRecord) Assert.Equal(sha, store.Record(name).GetProperty("sha256").GetString());
            AssertListed(await ListAsync(store), round - 1 + (hasRecord ? 1 : 0), $"round {round}, after the kill");

            // PostgreSQL retries the push: it must succeed and archive exactly the input.
            var retry = await store.Cli.RunAsync("wal-push", path);
            Assert.True(retry.ExitCode == 0, $"round {round}: retry after a kill at {delay.TotalMilliseconds:0} ms: {retry}");
            await AssertFetchesAsync(store, name, sha, restore, $"round {round}, after the retry");
            AssertListed(await ListAsync(store), round, $"round {round}, after the retry");

            expected[objectFile] = sha;
            expected[recordFile] = sha;
            foreach (var file in new[] { objectFile, recordFile })
                seen[file] = (new FileInfo(Path.Combine(store.Dir, file)).Length, File.GetLastWriteTimeUtc(Path.Combine(store.Dir, file)));
            File.Delete(path);
        }
        foreach (var o in outcomes) output.WriteLine(o);

        // Every object was fetched and verified in its round and has not changed since.
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), store.VisibleFiles());
        // Not a timing claim: a kill test in which no push was interrupted would prove nothing.
        Assert.True(killedEarly >= 5, $"only {killedEarly} of {Rounds} pushes were killed before they finished");
        Directory.Delete(work, recursive: true);
    }

    /// <summary>
    /// Someone truncates the segment while wal-push reads it: a one-line error (exit 6) or, if the read was done
    /// first, the whole segment stored; never a signal (a mapped file would kill the process with SIGBUS).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ASegmentTruncatedWhileItIsPushedIsAOneLineErrorNeverASignal(bool async)
    {
        var store = LocalStore.Create("push-truncated", out var work);
        var input = Path.Combine(work, "pg_wal");
        if (async) TestEnv.CreateDirectory(Path.Combine(input, "archive_status"));
        var restore = Path.Combine(work, "restore");
        TestEnv.CreateDirectory(restore);
        var exits = new List<int>();
        for (var round = 1; round <= 8; round++)
        {
            var name = WalFileName.ForSegment(1, (ulong)round, SegmentSize).Name;
            var segment = TestSegments.Segment(name, seed: round, size: SegmentSize);
            var path = TestSegments.Write(input, name, segment);
            // Async: PostgreSQL has marked it ready, so the background worker reads it and wal-push waits for its outcome.
            if (async) await File.WriteAllTextAsync(Path.Combine(input, "archive_status", name + ".ready"), "");
            var psi = Proc.Cloudarchive(async ? ["wal-push", path, "--async"] : ["wal-push", path], new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = store.Url });
            using var p = Process.Start(psi)!;
            p.StandardInput.Close();
            var stderr = p.StandardError.ReadToEndAsync();
            await Task.Delay(round * 15);
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) f.SetLength(8192);
            await p.WaitForExitAsync();
            var error = await stderr;
            exits.Add(p.ExitCode);
            Assert.True(p.ExitCode is 0 or 6, $"round {round}: exit {p.ExitCode} (a signal?): {error}");
            if (async && File.Exists(Path.Combine(input, "archive_status", name + ".ready")))
                File.Move(Path.Combine(input, "archive_status", name + ".ready"), Path.Combine(input, "archive_status", name + ".done"));
            if (p.ExitCode == 6)
            {
                Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
                // Never part of a segment: if anything is stored, it is the whole segment as it was before the cut
                // (the async worker may have stored it just before; the file wal-push now sees is not that one).
                if (File.Exists(store.ObjectPath(name)))
                    await AssertFetchesAsync(store, name, TestSegments.Sha256(segment), restore, $"round {round}, exit 6");
            }
            else
            {
                await AssertFetchesAsync(store, name, TestSegments.Sha256(segment), restore, $"round {round}");
            }
        }
        output.WriteLine($"exits: {string.Join(' ', exits)}");
    }

    private static async Task<int> PushAndKillAsync(LocalStore store, string path, TimeSpan delay)
    {
        var psi = Proc.Cloudarchive(["wal-push", path], new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = store.Url });
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + psi.FileName);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await Task.Delay(delay);
        try
        {
            p.Kill(); // SIGKILL
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        await p.WaitForExitAsync();
        await Task.WhenAll(stdout, stderr);
        return p.ExitCode;
    }

    private static async Task AssertFetchesAsync(LocalStore store, string name, string sha, string restore, string when)
    {
        var dest = Path.Combine(restore, name);
        var r = await store.Cli.RunAsync("wal-fetch", name, dest);
        Assert.True(r.ExitCode == 0, $"{when}: wal-fetch {name}: {r}");
        Assert.Equal(sha, TestSegments.Sha256File(dest));
        File.Delete(dest);
        Assert.Empty(Directory.EnumerateFileSystemEntries(restore));
    }

    private static async Task<JsonElement> ListAsync(LocalStore store)
    {
        var r = await store.Cli.OkAsync("wal-list", "--json");
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    /// <summary>wal-list shows segments 1..<paramref name="last"/> of timeline 1 as one range, or nothing when last is 0.</summary>
    private static void AssertListed(JsonElement list, int last, string when)
    {
        Assert.False(list.GetProperty("hasGaps").GetBoolean(), when);
        var timelines = list.GetProperty("timelines").EnumerateArray().ToList();
        if (last == 0)
        {
            Assert.True(timelines.Count == 0, $"{when}: {list}");
            return;
        }
        var t = Assert.Single(timelines);
        var range = Assert.Single(t.GetProperty("ranges").EnumerateArray());
        Assert.Equal(WalFileName.ForSegment(1, 1, SegmentSize).Name, range.GetProperty("first").GetString());
        Assert.Equal(WalFileName.ForSegment(1, (ulong)last, SegmentSize).Name, range.GetProperty("last").GetString());
        Assert.Equal(last, t.GetProperty("segments").GetInt64());
        Assert.Empty(t.GetProperty("partial").EnumerateArray());
    }
}
