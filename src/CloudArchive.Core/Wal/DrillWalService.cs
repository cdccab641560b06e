using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>
/// A drill's WAL, served by the drill itself: the drill's server runs with no store credentials in its environment,
/// so its restore_command (wal-fetch with <c>--drill-fd</c>) hands each fetch to the drill process, which runs the
/// same verified fetch with its own store. The channel is one end of a socket pair (SOCK_SEQPACKET: one message per
/// request and per answer) that the server inherits: its sandbox may connect to no socket at all. Only a request that
/// carries this drill's random token, names a WAL file and writes into the restored data directory's pg_wal is served;
/// each answer carries its request's random id, so an answer meant for another asker is never taken for one's own.
/// </summary>
public sealed class DrillWalService
{
    private readonly IObjectStore _store;
    private readonly string _dataDirectory;
    private readonly string _pgWal;

    /// <param name="store">The drill's store (its credentials stay in the drill process).</param>
    /// <param name="dataDirectory">The restored data directory the drill's server recovers.</param>
    public DrillWalService(IObjectStore store, string dataDirectory)
    {
        _store = store;
        _dataDirectory = Path.GetFullPath(dataDirectory);
        _pgWal = Path.Combine(_dataDirectory, "pg_wal");
        Token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
    }

    /// <summary>The random token a request must carry (as its identity): this drill's restore_command has it, no other.</summary>
    public string Token { get; }

    /// <summary>
    /// The last fetch that failed, with its exit code and message: why the drill's server stopped recovering, told by
    /// the fetch itself rather than read back from the server's log.
    /// </summary>
    public CloudArchiveException? LastFailure { get; private set; }

    private const int MaxMessage = 64 << 10;

    /// <summary>
    /// Serves the requests that arrive on <paramref name="channel"/>, one at a time (recovery asks for one file at a
    /// time), until every holder of the other end is gone or <paramref name="ct"/>.
    /// </summary>
    public async Task RunAsync(Socket channel, CancellationToken ct)
    {
        var buffer = new byte[MaxMessage];
        while (true)
        {
            var n = await channel.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0) return;
            AgentRequest? request = null;
            try
            {
                request = JsonSerializer.Deserialize(buffer.AsSpan(0, n), AgentJson.Default.AgentRequest);
            }
            catch (JsonException)
            {
                // answered below as not served
            }
            AgentReply reply;
            if (request is null || request.Identity != Token) reply = new AgentReply((int)ExitCode.Usage, "not served: not this drill's request", request?.Id);
            else
                try
                {
                    reply = new AgentReply(await ServeAsync(request, ct).ConfigureAwait(false), null, request.Id);
                }
                catch (CloudArchiveException e)
                {
                    LastFailure = e;
                    reply = new AgentReply((int)e.ExitCode, e.Message, request.Id);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The loop serves every later fetch too: a fault of one (the pg_wal disk) is that fetch's answer.
                    LastFailure = new CloudArchiveException(ExitCode.Internal, $"the drill's WAL fetch failed: {e.Message}", e);
                    reply = new AgentReply((int)ExitCode.Internal, LastFailure.Message, request.Id);
                }
            await channel.SendAsync(JsonSerializer.SerializeToUtf8Bytes(reply, AgentJson.Default.AgentReply), SocketFlags.None, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A restore_command's side: sends <paramref name="request"/> on the inherited descriptor <paramref name="fd"/> and
    /// waits for the answer that carries its id; null when none came within <paramref name="wait"/> or the drill is gone.
    /// Blocking calls, not the event loop: a descriptor one wraps only for a moment is never registered with it.
    /// </summary>
    public static AgentReply? Ask(int fd, AgentRequest request, TimeSpan wait)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var deadline = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        try
        {
            using var channel = new Socket(new SafeSocketHandle(fd, ownsHandle: false));
            channel.Blocking = true;
            channel.SendTimeout = (int)Math.Min(int.MaxValue, wait.TotalMilliseconds);
            channel.Send(JsonSerializer.SerializeToUtf8Bytes(request with { Id = id }, AgentJson.Default.AgentRequest));
            var buffer = new byte[MaxMessage];
            while (deadline - Environment.TickCount64 is var left and > 0)
            {
                channel.ReceiveTimeout = (int)Math.Min(int.MaxValue, left);
                var n = channel.Receive(buffer);
                if (n == 0) return null;
                AgentReply? reply = null;
                try
                {
                    reply = JsonSerializer.Deserialize(buffer.AsSpan(0, n), AgentJson.Default.AgentReply);
                }
                catch (JsonException)
                {
                    // not an answer: wait for ours
                }
                if (reply?.Id == id) return reply;
            }
            return null;
        }
        catch (Exception e) when (e is SocketException or IOException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>One request: 0 fetched, 1 not in the archive; a store failure is thrown, and reaches wal-fetch's exit policy.</summary>
    public async Task<int> ServeAsync(AgentRequest request, CancellationToken ct)
    {
        if (request.Op != "fetch" || request.Name is not { } name || request.Destination is not { } destination)
            throw new CloudArchiveException(ExitCode.Usage, $"the drill serves WAL fetches only, not '{request.Op}'");
        if (!WalFileName.TryParse(name, out _))
            throw new CloudArchiveException(ExitCode.Usage, $"'{name}' is not a WAL file name");
        var full = Path.GetFullPath(destination);
        if (!Path.IsPathRooted(destination) || Path.GetDirectoryName(full) != _pgWal)
            throw new CloudArchiveException(ExitCode.Usage, $"the drill writes WAL only into {_pgWal}, not to {destination}");
        var options = new WalFetchOptions(0, null, _dataDirectory, "");
        return await new WalFetchService(() => _store, NoWorkers.Instance, options).FetchAsync(name, full, ct).ConfigureAwait(false) ? 0 : 1;
    }

    /// <summary>A fetch without prefetch starts no worker.</summary>
    private sealed class NoWorkers : IWorkerStarter
    {
        public static readonly NoWorkers Instance = new();

        public void Start(BackgroundWorker worker) => throw new InvalidOperationException("the drill's WAL fetch starts no worker");
    }
}
