using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using CloudArchive.Core.Spool;

namespace CloudArchive.Core.Wal;

/// <summary>One request to the agent: a wal-push of <see cref="Path"/> or a wal-fetch of <see cref="Name"/> to <see cref="Destination"/>.</summary>
/// <param name="Op">push or fetch.</param>
/// <param name="Identity">A hash of the client's settings and store credentials: the agent serves only a client configured as it is.</param>
/// <param name="Path">push: the WAL file, absolute.</param>
/// <param name="Name">fetch: the WAL file name (%f).</param>
/// <param name="Destination">fetch: where to write it (%p), absolute.</param>
/// <param name="DataDirectory">fetch: the data directory in recovery, when known.</param>
/// <param name="Id">A drill's request: the random id its answer carries back (the drill's channel is one socket for all asking).</param>
public sealed record AgentRequest(string Op, string Identity, string? Path = null, string? Name = null, string? Destination = null,
    string? DataDirectory = null, string? Id = null);

/// <summary>The agent's answer: the exit code the client ends with (before its own exit policy) and the error's message.</summary>
/// <param name="Exit">0, 1 (a fetch: not in the archive) or an error's code; -1: not served here (the client does the work itself).</param>
/// <param name="Message">The error's one line.</param>
/// <param name="Id">The id of the request answered (a drill's).</param>
public sealed record AgentReply(int Exit, string? Message = null, string? Id = null);

/// <summary>The agent protocol's JSON (NativeAOT: source-generated).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AgentRequest))]
[JsonSerializable(typeof(AgentReply))]
public sealed partial class AgentJson : JsonSerializerContext;

/// <summary>
/// The per-cluster agent: a long-lived process that holds the store's warm connections, credentials and trusted roots,
/// to which wal-push and wal-fetch (with --agent) hand their work over a Unix socket instead of setting all that up
/// in a process per segment. It runs the very code they would run, so every promise holds as it does for them; a
/// client whose agent is gone, busy starting or configured otherwise does the work itself. One agent per cluster
/// (a lock in the spool); its socket lives in a directory only this user can enter, outside the data directory.
/// </summary>
public sealed class WalAgent(string spoolRoot, string identity, Func<AgentRequest, CancellationToken, Task<int>> serve, TimeSpan idle)
{
    private const int MaxRequest = 64 << 10;
    private long _lastRequest = Environment.TickCount64;
    private int _running;

    /// <summary>
    /// What the agent does with a request: a push through <paramref name="push"/>, a fetch through the fetch service
    /// <paramref name="fetch"/> makes for the client's data directory (0 stored or fetched, 1 not in the archive);
    /// anything else is a usage error, answered to that client alone.
    /// </summary>
    public static Func<AgentRequest, CancellationToken, Task<int>> Serve(WalPushService push, Func<string?, WalFetchService> fetch) =>
        async (request, ct) =>
        {
            switch (request.Op)
            {
                case "push" when request.Path is { } walPath:
                    await push.PushAsync(walPath, ct).ConfigureAwait(false);
                    return 0;
                case "fetch" when request.Name is { } name && request.Destination is { } destination:
                    return await fetch(request.DataDirectory).FetchAsync(name, destination, ct).ConfigureAwait(false) ? 0 : 1;
                default:
                    throw new CloudArchiveException(ExitCode.Usage, $"the agent does not know the request '{request.Op}'");
            }
        };

    /// <summary>The spool root of a cluster: the configured one, else pg_wal/.cloudarchive of its data directory.</summary>
    public static string? SpoolRoot(string? configured, string? dataDirectory) => SpoolLocation.Resolve(configured, dataDirectory);

    /// <summary>
    /// A hash of what decides what the agent would do: every setting but logging, and the store credentials of the
    /// environment. Only the hash crosses the socket.
    /// </summary>
    public static string Identity(IEnumerable<string> settings)
    {
        var env = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("AWS_", StringComparison.Ordinal) || k.StartsWith("AZURE_", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}");
        return Crypto.LightSha256.HexOf(string.Join('\n', settings.Concat(env)));
    }

    /// <summary>
    /// Where the agent of <paramref name="spoolRoot"/> listens: $XDG_RUNTIME_DIR, else /tmp, in cloudarchive-agent-USER
    /// (0700); null when that directory is not this user's private one (a link, or other permissions) or the path is too
    /// long for a socket. A directory someone else made with mode 0700 cannot be entered: the agent cannot listen there
    /// and a client cannot connect, so both fall back to working alone.
    /// </summary>
    public static string? SocketPath(string spoolRoot, bool create)
    {
        var hash = Crypto.LightSha256.HexOf(System.IO.Path.GetFullPath(spoolRoot))[..16];
        // An inherited XDG_RUNTIME_DIR may be another user's: then /tmp (the agent and its clients decide alike).
        foreach (var runtime in new[] { Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR"), "/tmp" })
        {
            if (string.IsNullOrEmpty(runtime) || !Directory.Exists(runtime)) continue;
            var dir = System.IO.Path.Combine(runtime, $"cloudarchive-agent-{Environment.UserName}");
            if (!IsPrivate(dir, create)) continue;
            var path = System.IO.Path.Combine(dir, hash + ".sock");
            if (path.Length < 100 && (create || File.Exists(path))) return path;
        }
        return null;
    }

    private static bool IsPrivate(string dir, bool create)
    {
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        try
        {
            if (create && !Directory.Exists(dir)) Directory.CreateDirectory(dir, Private);
            var info = new DirectoryInfo(dir);
            return info.Exists && info.LinkTarget is null && info.UnixFileMode == Private;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The lock that makes the agent one per cluster.</summary>
    public static string LockPath(string spoolRoot) => System.IO.Path.Combine(spoolRoot, "agent.lock");

    /// <summary>Whether an agent runs for <paramref name="spoolRoot"/>.</summary>
    public static bool IsRunning(string spoolRoot) => File.Exists(LockPath(spoolRoot)) && SpoolLock.IsHeld(LockPath(spoolRoot));

    /// <summary>
    /// Serves requests until none came for the idle time (or <paramref name="ct"/>); returns at once when another agent
    /// holds the cluster's lock.
    /// </summary>
    public async Task RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(spoolRoot, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var held = SpoolLock.TryAcquire(LockPath(spoolRoot));
        if (held is null) return;
        var socketPath = SocketPath(spoolRoot, create: true)
            ?? throw new CloudArchiveException(ExitCode.InvalidInput, "no private directory for the agent's socket (see docs/wal.md, Agent)");
        // Only the lock holder removes a socket: a stale one is a killed agent's.
        File.Delete(socketPath);
        Log.Info($"agent: serving {spoolRoot} on {socketPath}");
        await ServeAsync(socketPath, ct).ConfigureAwait(false);
        Log.Info("agent: stopped");
    }

    /// <summary>
    /// Serves requests on <paramref name="socketPath"/> (made here, mode 0600, in a directory the caller made private)
    /// until none came for the idle time, the root directory is gone, or <paramref name="ct"/>; the socket is removed.
    /// </summary>
    public async Task ServeAsync(string socketPath, CancellationToken ct)
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(16);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watchdog = WatchIdleAsync(stop);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await listener.AcceptAsync(stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                _ = HandleAsync(client, stop.Token);
            }
        }
        finally
        {
            // Whatever runs finishes first: a client waits for its answer.
            while (Volatile.Read(ref _running) > 0) await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            File.Delete(socketPath);
            await stop.CancelAsync().ConfigureAwait(false);
            await watchdog.ConfigureAwait(false);
        }
    }

    private async Task WatchIdleAsync(CancellationTokenSource stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stop.Token).ConfigureAwait(false);
                var quiet = TimeSpan.FromMilliseconds(Environment.TickCount64 - Interlocked.Read(ref _lastRequest));
                if (Volatile.Read(ref _running) == 0 && (quiet > idle || !Directory.Exists(spoolRoot))) await stop.CancelAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }

    private async Task HandleAsync(Socket client, CancellationToken ct)
    {
        Interlocked.Increment(ref _running);
        Interlocked.Exchange(ref _lastRequest, Environment.TickCount64);
        try
        {
            await using var stream = new NetworkStream(client, ownsSocket: true);
            var line = await ReadLineAsync(stream, ct).ConfigureAwait(false);
            AgentReply reply;
            AgentRequest? request = null;
            try
            {
                request = line is null ? null : JsonSerializer.Deserialize(line, AgentJson.Default.AgentRequest);
            }
            catch (JsonException)
            {
                // answered below as not served
            }
            if (request is null || request.Identity != identity) reply = new AgentReply(-1, "not served: another configuration");
            else
                try
                {
                    reply = new AgentReply(await serve(request, CancellationToken.None).ConfigureAwait(false));
                }
                catch (CloudArchiveException e)
                {
                    reply = new AgentReply((int)e.ExitCode, e.Message);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    reply = new AgentReply((int)ExitCode.Internal, $"internal error in the agent: {e.Message}");
                }
            await stream.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(reply, AgentJson.Default.AgentReply), ct).ConfigureAwait(false);
            await stream.WriteAsync("\n"u8.ToArray(), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            // the client went away: its own fallback covers it
        }
        finally
        {
            Interlocked.Exchange(ref _lastRequest, Environment.TickCount64);
            Interlocked.Decrement(ref _running);
        }
    }

    private static async Task<string?> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new byte[MaxRequest];
        var filled = 0;
        while (filled < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(filled), ct).ConfigureAwait(false);
            if (n == 0) return null;
            var end = Array.IndexOf(buffer, (byte)'\n', filled, n);
            filled += n;
            if (end >= 0) return Encoding.UTF8.GetString(buffer, 0, end);
        }
        return null;
    }

    /// <summary>
    /// Hands <paramref name="request"/> to the agent of <paramref name="spoolRoot"/> and waits for its answer; null when
    /// there is no agent, it is configured otherwise, or it went away before answering: then the caller does the work
    /// itself (a push is idempotent, a fetch writes its destination only by rename).
    /// </summary>
    /// <param name="wait">The most to wait for the answer (the store's retry budget and then some): an agent that hangs is not waited for.</param>
    public static async Task<AgentReply?> TryAsync(string spoolRoot, AgentRequest request, TimeSpan wait, CancellationToken ct) =>
        SocketPath(spoolRoot, create: false) is { } path && File.Exists(path) ? await AskAsync(path, request, wait, ct).ConfigureAwait(false) : null;

    /// <summary>
    /// Hands <paramref name="request"/> to the agent listening on <paramref name="path"/>; null when none answers there, it
    /// does not serve this request, or it went away before answering.
    /// </summary>
    public static async Task<AgentReply?> AskAsync(string path, AgentRequest request, TimeSpan wait, CancellationToken ct)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connect.CancelAfter(TimeSpan.FromSeconds(2));
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), connect.Token).ConfigureAwait(false);
            }
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            using var answer = CancellationTokenSource.CreateLinkedTokenSource(ct);
            answer.CancelAfter(wait);
            await stream.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(request, AgentJson.Default.AgentRequest), answer.Token).ConfigureAwait(false);
            await stream.WriteAsync("\n"u8.ToArray(), answer.Token).ConfigureAwait(false);
            var line = await ReadLineAsync(stream, answer.Token).ConfigureAwait(false);
            var reply = line is null ? null : JsonSerializer.Deserialize(line, AgentJson.Default.AgentReply);
            return reply is null || reply.Exit < 0 ? null : reply;
        }
        catch (Exception e) when (e is SocketException or IOException or JsonException
            || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null;
        }
    }
}
