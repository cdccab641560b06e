using System.Security.Cryptography;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>
/// A drill's WAL, served by the drill itself: the drill's server runs with no store credentials in its environment,
/// so its restore_command (wal-fetch with <c>--drill-socket</c>) hands each fetch over the agent protocol to the drill
/// process, which runs the same verified fetch with its own store. Only a request that carries this drill's random
/// token, names a WAL file and writes into the restored data directory's pg_wal is served.
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

    /// <summary>Serves on <paramref name="socketPath"/> (in a directory only this user can enter) until <paramref name="ct"/>.</summary>
    public Task RunAsync(string socketPath, CancellationToken ct) =>
        new WalAgent(Path.GetDirectoryName(socketPath)!, Token, ServeAsync, TimeSpan.MaxValue).ServeAsync(socketPath, ct);

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
