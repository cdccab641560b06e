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
                   (select setting from pg_settings where name = 'TimeZone' and source not in ('client', 'session'))
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
        await r.DisposeAsync().ConfigureAwait(false);
        // Before anything else is asked of the server or written to the store.
        if (PostgresVersion.RequireSupported(version) is { } warning) Log.Warn(warning);

        var tablespaces = new List<BackupTablespace>();
        await using var ts = new NpgsqlCommand(
            "select oid::int8, spcname::text, pg_tablespace_location(oid) from pg_tablespace " +
            "where spcname not in ('pg_default', 'pg_global') order by oid", conn);
        await using var tr = await ts.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await tr.ReadAsync(ct).ConfigureAwait(false))
            tablespaces.Add(new BackupTablespace((uint)tr.GetInt64(0), tr.GetString(1), tr.GetString(2)));
        return new ClusterFacts(sysid, version, datadir, segSize, archiveMode, tablespaces) { BlockSize = blockSize, TimeZone = timeZone };
    }

    private static long ParseSize(string text)
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
