using System.Security.Cryptography;
using System.Text.RegularExpressions;
using CloudArchive.Core;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>The unprivileged role a drill's checks run as, and why pg_amcheck cannot run (null: it can).</summary>
/// <param name="Name">The role's name (random, made by the drill).</param>
/// <param name="AmcheckUnavailable">Why the amcheck extension could not be installed; null when it is, in every database, or was not asked for.</param>
public sealed record CheckRole(string Name, string? AmcheckUnavailable);

/// <summary>
/// The catalog of a restored backup, which a drill does not trust: anyone who can write to the store can plant a
/// backup whose catalog holds C functions loading a library from the data directory, event triggers, SECURITY DEFINER
/// functions and functions in untrusted languages, any of which would run its code in the drill's server. On the
/// throwaway copy, over the bootstrap superuser's pinned connection, every database is made harmless before anything
/// of the backup's runs: a trigger or rule on a system catalog, or a C function that loads anything but the
/// installation's libraries, refuses the drill; event
/// triggers are disabled, SECURITY DEFINER cleared, functions of untrusted languages and the server's file functions
/// made uncallable, foreign-data wrappers cut off, stored per-role and per-database settings dropped. pg_amcheck and
/// the checks then run as a new role that is no superuser, has no role membership and can only read.
/// </summary>
public static partial class RestoredCatalog
{
    private const int InternalLanguage = 12, CLanguage = 13, SqlLanguage = 14;

    /// <summary>Language handlers that are the trusted variant of their language (the untrusted ones have other symbols).</summary>
    private const string TrustedHandlers =
        "('$libdir/plpgsql', 'plpgsql_call_handler'), ('$libdir/plperl', 'plperl_call_handler'), ('$libdir/pltcl', 'pltcl_call_handler')";

    /// <summary>The C symbols of the built-in and adminpack functions that read or write the server's files: never callable by the role.</summary>
    private const string ServerFileFunctions = "^(be_lo_import|be_lo_export|pg_read_file|pg_read_binary_file|pg_ls_|pg_stat_file|pg_file_|pg_logdir_ls)";

    /// <summary>
    /// Makes every database that accepts connections harmless and creates the role; with <paramref name="amcheck"/>,
    /// installs amcheck in each (as the superuser, event triggers off) and lets the role run its functions.
    /// </summary>
    /// <exception cref="CloudArchiveException">Corrupt: a C function loads a library the installation does not have, or amcheck's functions are not its own.</exception>
    public static async Task<CheckRole> PrepareAsync(DrillServer server, bool amcheck, CancellationToken ct)
    {
        List<string> databases;
        string role;
        await using (var conn = await server.ConnectAsync("postgres", ct).ConfigureAwait(false))
        {
            // The shared catalogs changed below fire this database's triggers and rules.
            await RefuseCatalogTriggersAsync(conn, "postgres", ct).ConfigureAwait(false);
            databases = await ListAsync(conn, "select datname from pg_database where datallowconn order by datname", ct).ConfigureAwait(false);
            // Settings stored per role and database apply to every login, also the role's (session_preload_libraries among them).
            await ExecuteAsync(conn, "delete from pg_db_role_setting", ct).ConfigureAwait(false);
            role = await CreateRoleAsync(conn, ct).ConfigureAwait(false);
        }
        string? unavailable = null;
        foreach (var database in databases)
        {
            await using var conn = await server.ConnectAsync(database, ct).ConfigureAwait(false);
            await RefuseCatalogTriggersAsync(conn, database, ct).ConfigureAwait(false);
            await RefuseForeignLibrariesAsync(conn, database, ct).ConfigureAwait(false);
            await ExecuteAsync(conn, "update pg_event_trigger set evtenabled = 'D' where evtenabled <> 'D'", ct).ConfigureAwait(false);
            await ExecuteAsync(conn, "update pg_proc set prosecdef = false where prosecdef", ct).ConfigureAwait(false);
            // Trust is the handler's, not the flag's: a language whose handler is not a trusted one's is untrusted, its functions uncallable.
            await ExecuteAsync(conn, $"update pg_language l set lanpltrusted = false where l.oid not in ({InternalLanguage}, {CLanguage}, {SqlLanguage}) " +
                $"and l.lanpltrusted and not exists (select 1 from pg_proc h where h.oid = l.lanplcallfoid and h.prolang = {CLanguage} " +
                $"and (h.probin, h.prosrc) in ({TrustedHandlers}))", ct).ConfigureAwait(false);
            await ExecuteAsync(conn, "update pg_proc set proacl = '{}' where prolang in (select oid from pg_language where not lanpltrusted " +
                $"and oid not in ({InternalLanguage}, {CLanguage}))", ct).ConfigureAwait(false);
            await ExecuteAsync(conn, $"update pg_proc set proacl = '{{}}' where prolang in ({InternalLanguage}, {CLanguage}) and prosrc ~ '{ServerFileFunctions}'",
                ct).ConfigureAwait(false);
            // file_fdw's program option runs a command, postgres_fdw and dblink reach other servers: no foreign scan at all.
            await ExecuteAsync(conn, "update pg_foreign_data_wrapper set fdwhandler = 0 where fdwhandler <> 0", ct).ConfigureAwait(false);
            await GrantReadAsync(conn, role, ct).ConfigureAwait(false);
            if (amcheck && unavailable is null) unavailable = await InstallAmcheckAsync(conn, database, role, ct).ConfigureAwait(false);
        }
        return new CheckRole(role, unavailable);
    }

    /// <summary>
    /// A C function loads its probin when called (or when its type, operator or language is used): only the
    /// installation's libraries, $libdir/NAME or a bare NAME found in dynamic_library_path (pinned to $libdir), may be named.
    /// </summary>
    private static async Task RefuseForeignLibrariesAsync(NpgsqlConnection conn, string database, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"select n.nspname, p.proname, p.probin from pg_proc p left join pg_namespace n on n.oid = p.pronamespace " +
            $"where p.prolang = {CLanguage}", conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            var probin = reader.IsDBNull(2) ? "" : reader.GetString(2);
            if (IsInstalledLibrary(probin)) continue;
            var schema = reader.IsDBNull(0) ? "?" : reader.GetString(0);
            throw new CloudArchiveException(ExitCode.Corrupt, $"database {database}: function {schema}.{reader.GetString(1)} (language C) loads " +
                $"'{probin}', not a library of the server's installation ($libdir): the backup is not trusted, nothing of it was run");
        }
    }

    /// <summary>
    /// PostgreSQL puts no trigger on a system catalog and no rule on its tables (only views such as pg_settings have
    /// rules); the catalog changes below would fire them as the superuser. One that a forged catalog has refuses the drill.
    /// </summary>
    private static async Task RefuseCatalogTriggersAsync(NpgsqlConnection conn, string database, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("select 'trigger ' || t.tgname || ' on ' || c.relname from pg_trigger t join pg_class c on c.oid = t.tgrelid " +
            "where t.tgrelid < 16384 union all select 'rule ' || r.rulename || ' on ' || c.relname from pg_rewrite r join pg_class c on c.oid = r.ev_class " +
            "where r.ev_class < 16384 and c.relkind <> 'v' limit 1", conn);
        if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is string found)
            throw new CloudArchiveException(ExitCode.Corrupt, $"database {database}: {found}, a system catalog, which PostgreSQL never makes: the backup " +
                "is not trusted, nothing of it was run");
    }

    /// <summary>$libdir/NAME (subdirectories allowed) or a bare NAME; no segment starts with a dot (no ..).</summary>
    public static bool IsInstalledLibrary(string probin) => LibraryPath().IsMatch(probin);

    [GeneratedRegex(@"^(\$libdir/)?[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$")]
    private static partial Regex LibraryPath();

    /// <summary>
    /// A new login role with a random name: no superuser, no inheritance, no membership (rows a forged catalog made in
    /// advance for the oid it would get are removed), BYPASSRLS so that policies neither hide rows nor run the backup's functions.
    /// </summary>
    private static async Task<string> CreateRoleAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var name = "cloudarchive_drill_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
            try
            {
                await ExecuteAsync(conn, $"create role {name} login nosuperuser nocreatedb nocreaterole noreplication noinherit bypassrls", ct)
                    .ConfigureAwait(false);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateObject && attempt < 5)
            {
                continue; // the backup made a role of that name: another one
            }
            await ExecuteAsync(conn, $"delete from pg_auth_members where member = (select oid from pg_authid where rolname = '{name}') " +
                $"or roleid = (select oid from pg_authid where rolname = '{name}')", ct).ConfigureAwait(false);
            return name;
        }
    }

    /// <summary>USAGE on every schema and SELECT on its tables and sequences (pg_read_all_data is a membership, which the role has none of).</summary>
    private static async Task GrantReadAsync(NpgsqlConnection conn, string role, CancellationToken ct)
    {
        var schemas = await ListAsync(conn, "select nspname from pg_namespace where nspname not in ('pg_catalog', 'information_schema') " +
            "and nspname not like 'pg\\_toast%' and nspname not like 'pg\\_temp\\_%'", ct).ConfigureAwait(false);
        foreach (var schema in schemas.Select(Identifier))
            await ExecuteAsync(conn, $"grant usage on schema {schema} to {role}; grant select on all tables in schema {schema} to {role}; " +
                $"grant select on all sequences in schema {schema} to {role}", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// amcheck in <paramref name="database"/> (the superuser installs it; pg_amcheck does not), checked to be the
    /// installation's own C functions, executable by the role; the reason when the extension is not available.
    /// </summary>
    private static async Task<string?> InstallAmcheckAsync(NpgsqlConnection conn, string database, string role, CancellationToken ct)
    {
        try
        {
            await ExecuteAsync(conn, "create extension if not exists amcheck", ct).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedFile or PostgresErrorCodes.FeatureNotSupported
            or PostgresErrorCodes.UndefinedObject)
        {
            return e.MessageText;
        }
        await using var cmd = new NpgsqlCommand("select p.oid::regprocedure::text, p.prolang = 13 and p.probin = '$libdir/amcheck' and not p.prosecdef " +
            "from pg_proc p join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e' " +
            "join pg_extension e on e.oid = d.refobjid where e.extname = 'amcheck'", conn);
        var functions = new List<string>();
        await using (var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                if (!reader.GetBoolean(1))
                    throw new CloudArchiveException(ExitCode.Corrupt, $"database {database}: amcheck's function {reader.GetString(0)} is not the " +
                        "installation's (language C in $libdir/amcheck): the backup is not trusted");
                functions.Add(reader.GetString(0));
            }
        foreach (var function in functions) await ExecuteAsync(conn, $"grant execute on function {function} to {role}", ct).ConfigureAwait(false);
        return null;
    }

    private static string Identifier(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static async Task<List<string>> ListAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        var list = new List<string>();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false)) list.Add(reader.GetString(0));
        return list;
    }

    private static async Task ExecuteAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }
}
