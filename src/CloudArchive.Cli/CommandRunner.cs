using CloudArchive.Core.Manifest;
using CloudArchive.Core.Wal;
using CloudArchive.Core.Storage;
using CloudArchive.Storage;

namespace CloudArchive.Cli;

/// <summary>What every command action gets: resolved settings and a way to open the store.</summary>
internal sealed class CommandContext(ParseResult parse, Settings settings)
{
    public ParseResult Parse { get; } = parse;
    public Settings Settings { get; } = settings;

    /// <summary>
    /// The store, as the history of the cluster this command serves: <paramref name="clusterSystemId"/> when the command
    /// knows it, else --system-id, else the cluster whose data directory this runs in (archive_command and restore_command
    /// run there), else the newest history (<see cref="ClusterHistories"/>).
    /// </summary>
    /// <remarks>With --fallback-store (the reading commands), the two copies of the archive read as one (<see cref="FallbackObjectStore"/>).</remarks>
    public IObjectStore OpenStore(ulong? clusterSystemId = null)
    {
        var systemId = clusterSystemId ?? ChosenSystemId() ?? ControlFile.TryRead(Directory.GetCurrentDirectory())?.SystemIdentifier;
        var second = SecondStore();
        var store = ClusterHistories.Select(second is not null && Writers.Contains(CommandName) ? OpenMirror(second) : OpenWholeStore(), systemId);
        var fallback = OpenFallbackStore()
                       ?? (second is not null && SettingsTable.FallbackStore.Commands.Contains(CommandName) ? OpenSecond(second) : null);
        return fallback is not null ? new FallbackObjectStore(store, ClusterHistories.Select(fallback, systemId)) : store;
    }

    /// <summary>The commands whose writes go to both stores when a second store is configured (restore's lease stays in the first).</summary>
    private static readonly string[] Writers = ["wal-push", "wal-push-worker", "wal-agent", "backup-push", "dump-push", "drill"];

    private string CommandName => Parse.CommandResult.Command.Name;

    /// <summary>
    /// The second store archiving writes to (--store-2, else --store-2-config's CLOUDARCHIVE_STORE), with --store-2-config's settings
    /// alone when given (the encryption key settings stay this command line's), and its mode; null when none is configured or
    /// the command takes none. A bad mode, or the store itself named again, is a usage error.
    /// </summary>
    public SecondStoreSettings? SecondStore()
    {
        if (!SettingsTable.Store2.Commands.Contains(CommandName)) return null;
        var other = Settings.Get(SettingsTable.Store2Config) is { } path ? Settings.OtherStore(path) : null;
        if ((Settings.Get(SettingsTable.Store2) ?? other?.Get(SettingsTable.Store)) is not { } url) return null;
        var mode = Settings.Get(SettingsTable.Store2Mode)?.Trim().ToLowerInvariant() switch
        {
            null or "required" => SecondStoreMode.Required,
            "best-effort" => SecondStoreMode.BestEffort,
            var bad => throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.Store2Mode.Flag} must be required or best-effort, not '{bad}'"),
        };
        if (string.Equals(Settings.RequireStore().TrimEnd('/'), url.TrimEnd('/'), StringComparison.Ordinal) && other is null)
            throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.Store2.Flag} names the store itself ({url}): the second store must be another one");
        Func<Setting, string?> setting = other is null ? Settings.Get
            : s => s == SettingsTable.EncryptionKeyFile || s == SettingsTable.EncryptionRequired ? Settings.Get(s) : other.Get(s);
        return new SecondStoreSettings(url, mode, setting, other?.Credential, other?.Path);
    }

    /// <summary>The second store as the history this command works on (--system-id, else the newest), for expire and verify; null without one.</summary>
    public (IObjectStore Store, SecondStoreSettings Settings)? OpenSecondStore()
    {
        if (SecondStore() is not { } second) return null;
        var systemId = ChosenSystemId() ?? ControlFile.TryRead(Directory.GetCurrentDirectory())?.SystemIdentifier;
        return (ClusterHistories.Select(OpenSecond(second), systemId), second);
    }

    /// <summary>The second store as a whole, as a reader sees it (encryption layer, retries).</summary>
    public IObjectStore OpenSecond(SecondStoreSettings second) => StoreFactory.Open(second.Url, Retry(), second.Get, second.Credential);

    /// <summary>The two stores' backends under their retries (objects byte for byte): what status compares and the catch-up copies.</summary>
    public (IObjectStore First, IObjectStore Second) OpenRawPair(SecondStoreSettings second) =>
        (StoreFactory.OpenRaw(Settings.RequireStore(), Retry(), Settings.Get), StoreFactory.OpenRaw(second.Url, SecondRetry(second), second.Get, second.Credential));

    /// <summary>
    /// What status and metrics compare: both stores' backends and the backlog of the spool (--spool-dir, else pg_wal/.cloudarchive of
    /// <paramref name="pgdata"/> or of the data directory this runs in); null without a second store.
    /// </summary>
    public Core.Operations.SecondStoreProbe? SecondStoreProbe(string? pgdata)
    {
        if (SecondStore() is not { } second) return null;
        var (first, other) = OpenRawPair(second);
        return new Core.Operations.SecondStoreProbe(first, other, second.Mode, StoreBacklog.FindFor(Settings.Get(SettingsTable.SpoolDir), pgdata));
    }

    /// <summary>
    /// Both stores written as one (<see cref="MirroredObjectStore"/>), under one encryption layer: both hold the same bytes. A
    /// best-effort second store is retried for at most 15 s, so that an outage of it does not hold up each push for the whole budget.
    /// </summary>
    private IObjectStore OpenMirror(SecondStoreSettings second)
    {
        var (first, other) = OpenRawPair(second);
        var keys = StoreFactory.Keys(Settings.Get);
        return new Core.Crypto.EncryptedObjectStore(new MirroredObjectStore(first, other, second.Mode, keys) { DownFor = SecondRetry(second).Budget }, keys);
    }

    private RetryPolicy SecondRetry(SecondStoreSettings second) => second.Mode == SecondStoreMode.BestEffort
        ? RetryPolicy.Default with { Budget = TimeSpan.FromSeconds(Math.Min(15, Settings.GetInt(SettingsTable.RetryTimeout))) }
        : Retry();

    /// <summary>
    /// The fallback store of a reading command: --fallback-store (else --fallback-config's CLOUDARCHIVE_STORE), reached with
    /// --fallback-config's settings alone when given (the encryption key settings stay this command line's); null when none.
    /// </summary>
    private IObjectStore? OpenFallbackStore()
    {
        if (!SettingsTable.FallbackStore.Commands.Contains(CommandName)) return null;
        var other = Settings.Get(SettingsTable.FallbackConfig) is { } path ? Settings.OtherStore(path) : null;
        if ((Settings.Get(SettingsTable.FallbackStore) ?? other?.Get(SettingsTable.Store)) is not { } url) return null;
        Func<Setting, string?> setting = other is null ? Settings.Get
            : s => s == SettingsTable.EncryptionKeyFile || s == SettingsTable.EncryptionRequired ? Settings.Get(s) : other.Get(s);
        return StoreFactory.Open(url, Retry(), setting, other?.Credential);
    }

    private RetryPolicy Retry() => RetryPolicy.Default with { Budget = TimeSpan.FromSeconds(Settings.GetInt(SettingsTable.RetryTimeout)) };

    /// <summary>The store as a whole (every history in it): for the commands that make, probe or upgrade it.</summary>
    public IObjectStore OpenWholeStore()
    {
        return StoreFactory.Open(Settings.RequireStore(), Retry(), Settings.Get);
    }

    /// <summary>
    /// copy's two stores, as their backends under the retry policy (objects byte for byte): --from (else the store) with this
    /// command line's settings, and --to (else --to-config's CLOUDARCHIVE_STORE) with --to-config's alone when given.
    /// </summary>
    public (IObjectStore From, IObjectStore To) OpenCopyStores()
    {
        var retry = Retry();
        var fromUrl = Settings.Get(SettingsTable.CopyFrom) ?? Settings.RequireStore();
        var other = Settings.Get(SettingsTable.CopyToConfig) is { } path ? Settings.OtherStore(path) : null;
        var toUrl = Settings.Get(SettingsTable.CopyTo) ?? other?.Get(SettingsTable.Store)
            ?? throw new CloudArchiveException(ExitCode.Usage, $"copy needs the store to bring up to date: {SettingsTable.CopyTo.Flag} URL, or a " +
                $"{SettingsTable.CopyToConfig.Flag} file that sets {SettingsTable.Store.Variable}");
        if (string.Equals(fromUrl.TrimEnd('/'), toUrl.TrimEnd('/'), StringComparison.Ordinal) && other is null)
            throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.CopyFrom.Flag} and {SettingsTable.CopyTo.Flag} name the same store ({toUrl})");
        return (StoreFactory.OpenRaw(fromUrl, retry, Settings.Get), StoreFactory.OpenRaw(toUrl, retry, other?.Get ?? Settings.Get, other?.Credential));
    }

    /// <summary>--system-id, for the reading commands only: archive_command and restore_command always serve their own cluster.</summary>
    private ulong? ChosenSystemId()
    {
        if (!SettingsTable.SystemId.Commands.Contains(Parse.CommandResult.Command.Name) || Settings.Get(SettingsTable.SystemId) is not { } text) return null;
        return ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) && id != 0
            ? id
            : throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.SystemId.Flag} {text}: a database system identifier is a positive number " +
                "(pg_controldata's \"Database system identifier\"; backup-list shows each history's)");
    }
}

/// <summary>
/// Turns a command's outcome into an exit code: a <see cref="CloudArchiveException"/> becomes its one-line
/// message and code; anything else is an internal error. Stack traces only with --verbose.
/// </summary>
internal static class CommandRunner
{
    /// <param name="mapFailure">
    /// The command's own exit policy (restore_command's), applied to every failure: also to those before the action
    /// runs (an unreadable config file, a bad setting, an unknown log level), which only the parse result can describe.
    /// </param>
    public static void SetAction(Command command, Func<CommandContext, CancellationToken, Task<ExitCode>> action,
        Func<ParseResult, CloudArchiveException, ExitCode>? mapFailure = null)
    {
        // At start-up, for every command: one RootRefusal does not list is a bug found before anything runs.
        RootRefusal.Writes(command.Name);
        command.SetAction(async (parse, ct) =>
        {
            var verbose = Settings.IsVerbose(parse);
            try
            {
                // Before the config file is read: root's refusal goes through the command's exit policy like any failure.
                if (RootRefusal.Refusal(command.Name) is { } refusal) throw new CloudArchiveException(ExitCode.Usage, refusal);
                var settings = Settings.Load(parse);
                // Before the config file is read only the flag and the variable count; from here on the file too.
                verbose = settings.GetBool(SettingsTable.Verbose);
                Log.Level = settings.GetLogLevel();
                return (int)await action(new CommandContext(parse, settings), ct).ConfigureAwait(false);
            }
            catch (CloudArchiveException e)
            {
                Log.Error(OneLine(e.Message));
                if (verbose) Log.Error(e.ToString());
                return (int)(mapFailure is not null ? mapFailure(parse, e) : e.ExitCode);
            }
            catch (OperationCanceledException)
            {
                Log.Error("interrupted");
                return 130;
            }
            catch (UnauthorizedAccessException e)
            {
                // A file or directory this user may not touch (a store or spool made by root, say): the path, not "internal error".
                Log.Error($"permission denied: {OneLine(e.Message)} (run as the user that owns it)");
                if (verbose) Log.Error(e.ToString());
                var denied = new CloudArchiveException(ExitCode.StoreUnavailable, e.Message, e);
                return (int)(mapFailure is not null ? mapFailure(parse, denied) : ExitCode.StoreUnavailable);
            }
            catch (Exception e)
            {
                Log.Error($"internal error: {OneLine(e.Message)} (run with --verbose for details)");
                if (verbose) Log.Error(e.ToString());
                var fake = new CloudArchiveException(ExitCode.Internal, e.Message, e);
                return (int)(mapFailure is not null ? mapFailure(parse, fake) : ExitCode.Internal);
            }
        });
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
