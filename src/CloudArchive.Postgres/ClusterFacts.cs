using CloudArchive.Core;
using CloudArchive.Core.Backup;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>What a backup records about the server it came from.</summary>
internal sealed record ClusterFacts(string SystemIdentifier, int ServerVersionNum, string DataDirectory, long WalSegmentSize,
    string ArchiveMode, IReadOnlyList<BackupTablespace> Tablespaces)
{
    /// <summary>The server's page size (block_size): the unit of an incremental backup's block maps.</summary>
    public int BlockSize { get; init; } = BlockMap.DefaultBlockSize;

    /// <summary>The server's own timezone setting; null when the session's came from the client.</summary>
    public string? TimeZone { get; init; }

    /// <summary>The server is a standby (in recovery): it cannot switch WAL itself.</summary>
    public bool InRecovery { get; init; }

    /// <summary>A standby's primary_conninfo (empty when not set, or not readable by this role).</summary>
    public string PrimaryConninfo { get; init; } = "";

    /// <summary>The server's cluster_name (empty when not set).</summary>
    public string ClusterName { get; init; } = "";

    /// <summary>The cluster's databases (pg_database's OID and name), for restore --db-include.</summary>
    public IReadOnlyList<BackupDatabase> Databases { get; init; } = [];

    /// <summary>What a backup record says of where it was taken: primary or standby, and the cluster_name.</summary>
    public string Node => (InRecovery ? "standby" : "primary") + (ClusterName.Length > 0 ? " " + ClusterName : "");

    /// <summary>Asks the server (pg_control_system, its settings, pg_tablespace); warns when its version is not one supported.</summary>
    public static async Task<ClusterFacts> ReadAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("""
            select (select system_identifier::text from pg_control_system()),
                   current_setting('server_version_num')::int,
                   current_setting('data_directory'),
                   current_setting('wal_segment_size', true),
                   current_setting('archive_mode'),
                   current_setting('block_size')::int,
                   (select setting from pg_settings where name = 'TimeZone' and source not in ('client', 'session')),
                   pg_is_in_recovery(),
                   current_setting('cluster_name')
            """, conn);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await r.ReadAsync(ct).ConfigureAwait(false);
        var sysid = r.GetString(0);
        var version = r.GetInt32(1);
        var datadir = r.GetString(2);
        var segSize = ParseSize(r.GetString(3));
        var archiveMode = r.GetString(4);
        var blockSize = r.GetInt32(5);
        // The zone a recovery_target_time without an offset is read in; not a zone the client's session asked for (PGTZ).
        var timeZone = r.IsDBNull(6) ? null : r.GetString(6);
        var (inRecovery, clusterName) = (r.GetBoolean(7), r.GetString(8));
        await r.DisposeAsync().ConfigureAwait(false);
        var primary = inRecovery ? await PrimaryConninfoAsync(conn, ct).ConfigureAwait(false) : "";
        // Before anything else is asked of the server or written to the store.
        if (PostgresVersion.RequireSupported(version) is { } warning) Log.Warn(warning);

        var tablespaces = new List<BackupTablespace>();
        await using var ts = new NpgsqlCommand(
            "select oid::int8, spcname::text, pg_tablespace_location(oid) from pg_tablespace " +
            "where spcname not in ('pg_default', 'pg_global') order by oid", conn);
        await using var tr = await ts.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await tr.ReadAsync(ct).ConfigureAwait(false))
            tablespaces.Add(new BackupTablespace((uint)tr.GetInt64(0), tr.GetString(1), tr.GetString(2)));
        await tr.DisposeAsync().ConfigureAwait(false);
        var databases = new List<BackupDatabase>();
        await using (var dbs = new NpgsqlCommand("select oid::int8, datname::text from pg_database order by oid", conn))
        await using (var dr = await dbs.ExecuteReaderAsync(ct).ConfigureAwait(false))
            while (await dr.ReadAsync(ct).ConfigureAwait(false))
                databases.Add(new BackupDatabase((uint)dr.GetInt64(0), dr.GetString(1)));
        return new ClusterFacts(sysid, version, datadir, segSize, archiveMode, tablespaces)
        {
            BlockSize = blockSize, TimeZone = timeZone, InRecovery = inRecovery, PrimaryConninfo = primary, ClusterName = clusterName,
            Databases = databases,
        };
    }

    /// <summary>A standby's primary_conninfo; empty when unset or when this role may not read it (it is a superuser's setting).</summary>
    private static async Task<string> PrimaryConninfoAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand("select current_setting('primary_conninfo')", conn);
            return (string?)await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) ?? "";
        }
        catch (PostgresException)
        {
            return "";
        }
    }

    /// <summary>A size as SHOW prints it ("16MB", "1GB"), in bytes.</summary>
    internal static long ParseSize(string text)
    {
        // "16MB" as SHOW prints it
        var digits = new string(text.TakeWhile(char.IsAsciiDigit).ToArray());
        var n = long.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
        return text[digits.Length..].Trim() switch
        {
            "kB" => n * 1024,
            "MB" => n * 1024 * 1024,
            "GB" => n * 1024 * 1024 * 1024,
            _ => n,
        };
    }
}
