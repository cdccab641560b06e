namespace CloudArchive.Core.Backup;

/// <summary>Which recovery_target_* setting a restore writes.</summary>
public enum TargetKind
{
    /// <summary>No target: replay all archived WAL.</summary>
    EndOfArchive,
    /// <summary>recovery_target_time.</summary>
    Time,
    /// <summary>recovery_target_lsn.</summary>
    Lsn,
    /// <summary>recovery_target_xid.</summary>
    Xid,
    /// <summary>recovery_target_name: a restore point made with pg_create_restore_point.</summary>
    Name,
    /// <summary>recovery_target = 'immediate': stop as soon as the backup is consistent.</summary>
    Immediate,
}

/// <summary>Where recovery should stop, in the words of recovery_target_*; Timeline is "latest", "current" or a number.</summary>
public sealed record RecoveryTarget(TargetKind Kind, string? Value, string Timeline = "latest")
{
    /// <summary>The recovery_target_time, for a time target (once resolved: <see cref="WithZone"/>).</summary>
    public DateTimeOffset? Time => Kind == TargetKind.Time
        ? DateTimeOffset.Parse(Value!, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal)
        : null;

    /// <summary>For a time target: the zone it was read in and why (null until resolved).</summary>
    public string? Zone { get; init; }

    /// <summary>
    /// A time target read in the zone PostgreSQL will read it in (<paramref name="clusterZone"/>, the cluster's timezone, when it
    /// names none), its value then UTC with an explicit offset; other targets as they are.
    /// </summary>
    public RecoveryTarget WithZone(string? clusterZone)
    {
        if (Kind != TargetKind.Time || Zone is not null) return this;
        var resolved = TargetTime.Resolve(Value!, clusterZone);
        return this with { Value = resolved.ForPostgres, Zone = resolved.Zone };
    }
    /// <summary>The recovery_target_lsn, for an LSN target.</summary>
    public Wal.Lsn? Lsn => Kind == TargetKind.Lsn ? Wal.Lsn.Parse(Value!) : null;

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        TargetKind.EndOfArchive => "the end of the archive",
        TargetKind.Immediate => "the end of the backup (immediate)",
        _ => $"{Kind.ToString().ToLowerInvariant()} {Value}",
    };
}

/// <summary>One entry of a timeline history file: timeline <c>Timeline</c> ended at <c>SwitchLsn</c>.</summary>
public sealed record TimelineSwitch(uint Timeline, Wal.Lsn SwitchLsn);

