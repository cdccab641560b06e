using System.Globalization;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Backup;

/// <summary>How a planned restore is written: the restored server's settings and how the files are written.</summary>
/// <param name="RestoreCommand">restore_command for the restored server.</param>
/// <param name="TargetAction">recovery_target_action (null: PostgreSQL's default, pause).</param>
public sealed record RestoreSettings(string RestoreCommand, string? TargetAction)
{
    /// <summary>Parallel downloads.</summary>
    public int Jobs { get; init; } = Environment.ProcessorCount;
    /// <summary>Fsync what is written (a drill's throwaway copy does not need to).</summary>
    public bool Sync { get; init; } = true;
    /// <summary>restore --delta: into an existing, stopped data directory of the same cluster.</summary>
    public bool Delta { get; init; }
    /// <summary>--archive-mode off.</summary>
    public bool ArchiveOff { get; init; }
    /// <summary>Restore as a standby (null: a recovery to the plan's target).</summary>
    public StandbyRestore? Standby { get; init; }
}

/// <summary>
/// The restore use case, one sequence for <c>restore</c> and the drill: plan the target from the store's records
/// (<see cref="PlanAsync"/>), decide where every path goes (<see cref="LayOut"/>, checked before anything is written),
/// then write the chain and the recovery settings (<see cref="RestoreAsync"/>). The caller may show the plan and the
/// layout between the steps; the order cannot be changed.
/// </summary>
public sealed class RestoreSequence
{
    private readonly IObjectStore _store;

    private RestoreSequence(IObjectStore store, RecoveryPlan plan)
    {
        _store = store;
        Plan = plan;
    }

    /// <summary>What the target needs: the backup (chain), the timelines and the WAL.</summary>
    public RecoveryPlan Plan { get; }

    /// <summary>Where the files go; null until <see cref="LayOut"/>.</summary>
    public RestoreLayout? Layout { get; private set; }

    /// <summary>restore --db-include: the databases restored whole; null until <see cref="SelectDatabases"/> names some (all are).</summary>
    public DatabaseSelection? Databases { get; private set; }

    /// <summary>Bytes the restore writes: the whole cluster (but the databases not included), whatever the chain's newest member stored.</summary>
    public long BytesToWrite => Plan.Backup.Entries.Where(e => Databases?.IsZeroed(e.Path) != true).Sum(e => e.Size);

    /// <summary>
    /// restore --db-include <paramref name="names"/>: checked against the planned backup's databases before anything is
    /// written (<see cref="DatabaseSelection.Resolve"/>); none: every database.
    /// </summary>
    public DatabaseSelection? SelectDatabases(IReadOnlyList<string> names) => Databases = DatabaseSelection.Resolve(Plan.Backup, names);

    /// <summary>Plans <paramref name="target"/> from the store's records (<paramref name="backupId"/>: an id, latest, or null for the newest that reaches it).</summary>
    public static async Task<RestoreSequence> PlanAsync(IObjectStore store, RecoveryTarget target, string? backupId, CancellationToken ct) =>
        new(store, await new BackupCatalog(store).PlanAsync(target, backupId, ct).ConfigureAwait(false));

    /// <summary>Lays the restore out under <paramref name="dataDirectory"/>, tablespaces where the operator said.</summary>
    public RestoreLayout LayOut(string dataDirectory, IReadOnlyDictionary<string, string> tablespaceMap, bool tablespacesInPlace) =>
        Layout = RestoreLayout.Resolve(Plan.Backup, dataDirectory, tablespaceMap, tablespacesInPlace);

    /// <summary>Lays a private copy out under <paramref name="workDirectory"/>: data in data/, each tablespace in tablespaces/OID.</summary>
    public RestoreLayout LayOutPrivately(string workDirectory) =>
        LayOut(Path.Combine(workDirectory, "data"),
            Plan.Backup.Tablespaces.ToDictionary(t => t.Location, t => Path.Combine(workDirectory, "tablespaces", t.Oid.ToString(CultureInfo.InvariantCulture)),
                StringComparer.Ordinal),
            tablespacesInPlace: false);

    /// <summary>Writes the planned chain into the layout and configures recovery.</summary>
    public async Task<RestoreResult> RestoreAsync(RestoreSettings settings, StartProgress? startProgress, CancellationToken ct)
    {
        var layout = Layout ?? throw new InvalidOperationException("LayOut before RestoreAsync");
        using var progress = startProgress?.Invoke("restore", BytesToWrite);
        return await new BackupRestorer(_store, settings.Jobs, progress) { Sync = settings.Sync }
            .RestoreAsync(Plan, layout, settings.RestoreCommand, settings.TargetAction, ct, settings.Delta, settings.ArchiveOff, settings.Standby, Databases)
            .ConfigureAwait(false);
    }

    /// <summary>--tablespace-map OLD=NEW pairs, both absolute; anything else is a usage error naming the pair.</summary>
    public static Dictionary<string, string> ParseTablespaceMap(IEnumerable<string> pairs)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in pairs)
        {
            var eq = m.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == m.Length - 1 || !Path.IsPathRooted(m[..eq]) || !Path.IsPathRooted(m[(eq + 1)..]))
                throw new CloudArchiveException(ExitCode.Usage, $"--tablespace-map takes OLD=NEW with absolute paths, not '{m}'");
            if (!map.TryAdd(m[..eq], m[(eq + 1)..]))
                throw new CloudArchiveException(ExitCode.Usage, $"--tablespace-map names {m[..eq]} twice");
        }
        return map;
    }
}
