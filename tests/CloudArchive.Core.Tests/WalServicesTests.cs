using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>
/// archive_command's and restore_command's use cases on the in-memory store, with their background workers run in
/// this process: the drop policy, the async worker's outcome reaching the foreground, and prefetch.
/// </summary>
public sealed class WalServicesTests : IDisposable
{
    private const ulong SystemId = 7_301_234_567_890_123_457UL;
    private const int SegmentSize = 1 << 20;
    private static readonly RetryPolicy Quick = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5));
    private readonly string _dir = Directory.CreateTempSubdirectory("wal-services-").FullName;
    private readonly string _pgWal;

    public WalServicesTests()
    {
        _pgWal = Directory.CreateDirectory(Path.Combine(_dir, "pg_wal")).FullName;
        Directory.CreateDirectory(Path.Combine(_pgWal, "archive_status"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A 1 MiB segment in pg_wal, marked ready as PostgreSQL marks it; different seeds, different content.</summary>
    private string ReadySegment(string name, int seed = 1)
    {
        var bytes = new byte[SegmentSize];
        new Random(seed).NextBytes(bytes.AsSpan(WalSegmentHeader.Size, 4096));
        WalSegmentHeader.For(WalFileName.Parse(name), SystemId, SegmentSize).WriteTo(bytes);
        var path = Path.Combine(_pgWal, name);
        File.WriteAllBytes(path, bytes);
        File.WriteAllText(Path.Combine(_pgWal, "archive_status", name + ".ready"), "");
        return path;
    }

    private static WalPushOptions Push(bool async = false, long maxQueueBytes = 0) =>
        new(1, async, TimeSpan.FromSeconds(20), maxQueueBytes, null, 2);

    [Fact]
    public async Task ASegmentWhoseOwnPushFailsIsDroppedOnlyPastTheLimitAndLoudly()
    {
        var memory = new InMemoryObjectStore();
        var store = new RetryingObjectStore(memory, Quick);
        var first = ReadySegment("000000010000000000000001", 1);
        ReadySegment("000000010000000000000002", 2);
        ReadySegment("000000010000000000000003", 3);
        memory.FailNext(int.MaxValue);

        // Under the limit: the failure reaches PostgreSQL, which keeps the segment and retries.
        var under = new WalPushService(() => store, new NoWorkers(), Push(maxQueueBytes: 4L * SegmentSize));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => under.PushAsync(first, CancellationToken.None));
        Assert.False(File.Exists(Path.Combine(_pgWal, ".cloudarchive", "push", "dropped.log")));

        // Over it (3 MiB waiting, limit 2 MiB): "stored" is answered for a segment that is not, and said so in the spool.
        var over = new WalPushService(() => store, new NoWorkers(), Push(maxQueueBytes: 2L * SegmentSize));
        await over.PushAsync(first, CancellationToken.None);
        var dropped = await File.ReadAllTextAsync(Path.Combine(_pgWal, ".cloudarchive", "push", "dropped.log"));
        Assert.Contains("DROPPED 000000010000000000000001", dropped);
        Assert.Empty(memory.Keys);
    }

    [Fact]
    public async Task AStoreThatRefusesIsNotAnOutageAndNothingIsDropped()
    {
        // Wrong credentials or bucket: a mistake to fix, not an outage to ride out. PostgreSQL keeps the WAL and retries.
        var memory = new InMemoryObjectStore { RefusesAccess = true };
        var first = ReadySegment("000000010000000000000001", 1);
        ReadySegment("000000010000000000000002", 2);
        ReadySegment("000000010000000000000003", 3);

        var service = new WalPushService(() => new RetryingObjectStore(memory, Quick), new NoWorkers(), Push(maxQueueBytes: SegmentSize));
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => service.PushAsync(first, CancellationToken.None));

        Assert.Contains("AccessDenied", e.Message);
        Assert.False(File.Exists(Path.Combine(_pgWal, ".cloudarchive", "push", "dropped.log")));
    }

    /// <summary>Through the async worker the same: what it saw (an outage, or a refusal) reaches the foreground, which drops only for an outage.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TheAsyncWorkerDropsOnlyForAnOutage(bool outage)
    {
        var memory = new InMemoryObjectStore { RefusesAccess = !outage };
        if (outage) memory.FailNext(int.MaxValue);
        var first = ReadySegment("000000010000000000000001", 1);
        ReadySegment("000000010000000000000002", 2);
        ReadySegment("000000010000000000000003", 3);
        var workers = new InProcessWorkers();
        var service = new WalPushService(() => new RetryingObjectStore(memory, Quick), workers, Push(async: true, maxQueueBytes: SegmentSize));
        workers.Push = service;

        var push = service.PushAsync(first, CancellationToken.None);
        if (outage) await push;
        else Assert.Contains("AccessDenied", (await Assert.ThrowsAsync<StoreUnavailableException>(() => push)).Message);
        await workers.IdleAsync();

        Assert.True(workers.Started > 0, "the push did not go through the worker");
        Assert.Equal(outage, File.Exists(Path.Combine(_pgWal, ".cloudarchive", "push", "dropped.log")));
    }

    [Fact]
    public async Task AHistoryFileIsNeverDropped()
    {
        var memory = new InMemoryObjectStore();
        ReadySegment("000000010000000000000001", 1);
        ReadySegment("000000010000000000000002", 2);
        var history = Path.Combine(_pgWal, "00000002.history");
        await File.WriteAllTextAsync(history, "1\t0/2000000\tno recovery target specified\n");
        memory.FailNext(int.MaxValue);

        var service = new WalPushService(() => new RetryingObjectStore(memory, Quick), new NoWorkers(), Push(maxQueueBytes: 1));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => service.PushAsync(history, CancellationToken.None));
    }

    [Fact]
    public async Task TheAsyncWorkersOutcomeIsTheForegroundsAnswer()
    {
        var memory = new InMemoryObjectStore();
        var path = ReadySegment("000000010000000000000004", 4);
        var workers = new InProcessWorkers();
        var service = new WalPushService(() => memory, workers, Push(async: true));
        workers.Push = service;

        await service.PushAsync(path, CancellationToken.None);

        Assert.True(workers.Started > 0, "the async push did not go through the worker");
        Assert.Contains(StoreLayout.WalRecordKey(WalFileName.Parse("000000010000000000000004")), memory.Keys);
    }

    [Fact]
    public async Task TheAsyncWorkersRefusalReachesTheForegroundWithItsExitCode()
    {
        var memory = new InMemoryObjectStore();
        // Another cluster's segment of the same name is in the store already.
        var other = Directory.CreateDirectory(Path.Combine(_dir, "other")).FullName;
        var otherPath = Path.Combine(other, "000000010000000000000005");
        File.Copy(ReadySegment("000000010000000000000005", 99), otherPath);
        await new WalArchive(memory, 1).PushAsync(otherPath, CancellationToken.None);
        var path = ReadySegment("000000010000000000000005", 5);
        var workers = new InProcessWorkers();
        var service = new WalPushService(() => memory, workers, Push(async: true));
        workers.Push = service;

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => service.PushAsync(path, CancellationToken.None));

        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);
    }

    [Fact]
    public async Task FetchSaysNotArchivedOnlyWhenItIsNotAndNeverWhenTheStoreFails()
    {
        var memory = new InMemoryObjectStore();
        var store = new RetryingObjectStore(memory, Quick);
        await new WalArchive(memory, 1).PushAsync(ReadySegment("000000010000000000000006", 6), CancellationToken.None);
        var fetch = new WalFetchService(() => store, new NoWorkers(), new WalFetchOptions(0, null, _dir, "memory://test"));
        var destination = Path.Combine(_dir, "RECOVERYXLOG");

        Assert.False(await fetch.FetchAsync("000000010000000000000007", destination, CancellationToken.None));
        Assert.True(await fetch.FetchAsync("000000010000000000000006", destination, CancellationToken.None));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_pgWal, "000000010000000000000006")), await File.ReadAllBytesAsync(destination));

        memory.FailNext(int.MaxValue);
        File.Delete(destination);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => fetch.FetchAsync("000000010000000000000007", destination, CancellationToken.None));
        Assert.False(File.Exists(destination));
    }

    /// <summary>
    /// A drill serves its server's restore_command over a socket: only a WAL file name, only into the restored pg_wal;
    /// absent is 1, a store failure is thrown (and reaches wal-fetch's exit policy as exit 200), never "not archived".
    /// </summary>
    [Fact]
    public async Task ADrillServesOnlyWalFetchesIntoItsOwnPgWal()
    {
        var memory = new InMemoryObjectStore();
        await new WalArchive(memory, 1).PushAsync(ReadySegment("000000010000000000000006", 6), CancellationToken.None);
        var drill = new DrillWalService(new RetryingObjectStore(memory, Quick), _dir);
        var into = Path.Combine(_pgWal, "RECOVERYXLOG");
        AgentRequest Fetch(string name, string destination, string op = "fetch") => new(op, drill.Token, Name: name, Destination: destination);

        Assert.Equal(0, await drill.ServeAsync(Fetch("000000010000000000000006", into), CancellationToken.None));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_pgWal, "000000010000000000000006")), await File.ReadAllBytesAsync(into));
        Assert.Equal(1, await drill.ServeAsync(Fetch("000000010000000000000007", into), CancellationToken.None));
        foreach (var bad in new[]
        {
            Fetch("../postgresql.conf", into), Fetch("000000010000000000000006", Path.Combine(_dir, "postgresql.conf")),
            Fetch("000000010000000000000006", "pg_wal/RECOVERYXLOG"), Fetch("000000010000000000000006", Path.Combine(_pgWal, "..", "x")),
            Fetch("000000010000000000000006", into, op: "push"),
        })
            Assert.Equal(ExitCode.Usage, (await Assert.ThrowsAsync<CloudArchiveException>(() => drill.ServeAsync(bad, CancellationToken.None))).ExitCode);
        memory.FailNext(int.MaxValue);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => drill.ServeAsync(Fetch("000000010000000000000007", into), CancellationToken.None));
    }

    /// <summary>
    /// The drill's channel, as its server's restore_command uses it: a fetch answered over the inherited socket pair, an
    /// answer left for an asker that went away is not taken for the next one's, a request without the token is refused,
    /// and once the drill is gone the asker hears nothing (the caller makes that exit 200, never "not archived").
    /// </summary>
    [Fact]
    public async Task ADrillsWalChannelAnswersEachAskerWithItsOwnAnswer()
    {
        var memory = new InMemoryObjectStore();
        await new WalArchive(memory, 1).PushAsync(ReadySegment("000000010000000000000006", 6), CancellationToken.None);
        var drill = new DrillWalService(new RetryingObjectStore(memory, Quick), _dir);
        var into = Path.Combine(_pgWal, "RECOVERYXLOG");
        var (kept, inherited) = CloudArchive.Native.Posix.InheritedSocketPair();
        var channel = new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(kept, ownsHandle: true));
        using var stop = new CancellationTokenSource();
        var serving = drill.RunAsync(channel, stop.Token);
        AgentRequest Fetch(string name, string token) => new("fetch", token, Name: name, Destination: into);

        // A stale answer waits in the channel (its asker was killed): the next asker skips it.
        var stale = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new AgentReply(1, null, "someone-else"), AgentJson.Default.AgentReply);
        Assert.Equal(stale.Length, await channel.SendAsync(stale, System.Net.Sockets.SocketFlags.None));
        var found = DrillWalService.Ask(inherited, Fetch("000000010000000000000006", drill.Token), TimeSpan.FromSeconds(10));
        Assert.Equal(0, found?.Exit);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_pgWal, "000000010000000000000006")), await File.ReadAllBytesAsync(into));
        Assert.Equal(1, (DrillWalService.Ask(inherited, Fetch("000000010000000000000007", drill.Token), TimeSpan.FromSeconds(10)))?.Exit);
        var refused = DrillWalService.Ask(inherited, Fetch("000000010000000000000006", "not-the-token"), TimeSpan.FromSeconds(10));
        Assert.Equal((int)ExitCode.Usage, refused?.Exit);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving);
        channel.Dispose();
        Assert.Null(DrillWalService.Ask(inherited, Fetch("000000010000000000000006", drill.Token), TimeSpan.FromSeconds(10)));
        CloudArchive.Native.Posix.CloseDescriptor(inherited);
    }

    /// <summary>The drill's launcher refuses what it cannot confine safely, in one line, before it confines anything.</summary>
    [Theory]
    [InlineData("--read", "relative/path", "--", "/bin/true")]
    [InlineData("--write", "/tmp", "/bin/true")]
    [InlineData("--", "true")]
    [InlineData("--read")]
    public void TheSandboxLauncherRefusesArgumentsItCannotHonour(params string[] args)
    {
        var message = CloudArchive.Native.Sandbox.Launch([CloudArchive.Native.Sandbox.Command, .. args]);
        Assert.StartsWith("usage: sandbox-exec", message);
    }

    [Fact]
    public async Task PrefetchedSegmentsAreServedFromTheSpoolWhenTheStoreIsGone()
    {
        var memory = new InMemoryObjectStore();
        var archive = new WalArchive(memory, 1);
        for (var i = 8; i <= 11; i++)
            await archive.PushAsync(ReadySegment($"0000000100000000000000{i:X2}", i), CancellationToken.None);
        var spool = Path.Combine(_dir, "spool");
        var workers = new InProcessWorkers();
        var fetch = new WalFetchService(() => memory, workers, new WalFetchOptions(3, spool, _dir, "memory://test"));
        workers.Fetch = fetch;
        var destination = Path.Combine(_dir, "RECOVERYXLOG");

        Assert.True(await fetch.FetchAsync("000000010000000000000008", destination, CancellationToken.None));
        await workers.IdleAsync();
        Assert.Equal(1, workers.Started);

        memory.FailNext(int.MaxValue);
        foreach (var name in new[] { "000000010000000000000009", "00000001000000000000000A", "00000001000000000000000B" })
        {
            File.Delete(destination);
            Assert.True(await fetch.FetchAsync(name, destination, CancellationToken.None), name);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_pgWal, name)), await File.ReadAllBytesAsync(destination));
        }
    }

    /// <summary>A caller that cannot start workers: a use case that needs none must not ask.</summary>
    private sealed class NoWorkers : IWorkerStarter
    {
        public void Start(BackgroundWorker worker) => throw new InvalidOperationException($"unexpected worker {worker}");
    }

    /// <summary>Runs each worker as a task of this process, as the CLI runs it as a process.</summary>
    private sealed class InProcessWorkers : IWorkerStarter
    {
        private readonly List<Task> _running = [];
        public WalPushService? Push { get; set; }
        public WalFetchService? Fetch { get; set; }
        public int Started { get; private set; }

        public void Start(BackgroundWorker worker)
        {
            Started++;
            lock (_running)
                _running.Add(worker switch
                {
                    PushWorker p => Task.Run(() => Push!.RunWorkerAsync(p.WalPath, CancellationToken.None)),
                    PrefetchWorker p => Task.Run(() => Fetch!.RunWorkerAsync(p, CancellationToken.None)),
                    _ => throw new ArgumentException(worker.ToString()),
                });
        }

        public Task IdleAsync()
        {
            lock (_running) return Task.WhenAll(_running);
        }
    }
}
