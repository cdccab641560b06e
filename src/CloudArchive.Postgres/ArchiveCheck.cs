using System.Diagnostics;
using CloudArchive.Core;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;
using Npgsql;

namespace CloudArchive.Postgres;

/// <summary>One finding of <c>cloudarchive check</c>.</summary>
/// <param name="What">What was checked, a few words.</param>
/// <param name="Passed">Whether it holds.</param>
/// <param name="Detail">What was seen, or why it does not hold.</param>
public sealed record CheckFinding(string What, bool Passed, string Detail);

/// <summary>What <c>cloudarchive check</c> checks against.</summary>
/// <param name="StoreUrl">The store this command is configured for (the one archive_command must name, when it names one).</param>
/// <param name="Encrypted">Whether a key is configured (its working is proven by the fetch of the switched segment).</param>
/// <param name="Deadline">How long the switched segment may take to arrive in the store.</param>
/// <param name="WorkDirectory">Where the fetched segment is written (and removed).</param>
/// <param name="StoreInConfig">The store a config file names, read as every command reads one; null when it cannot be read here.</param>
public sealed record ArchiveCheckOptions(string StoreUrl, bool Encrypted, TimeSpan Deadline, string WorkDirectory, Func<string, string?> StoreInConfig);

/// <summary>
/// check: the proof, on a running primary, that archiving works end to end, before anyone relies on it. archive_mode is
/// on; archive_command runs cloudarchive wal-push and names this store when it names one; the store refuses to
/// overwrite (a conditional put, written again, is refused); a WAL switch reaches the store within the deadline (so the
/// server really archives into this store, whatever its command names); that segment fetches and verifies as
/// restore_command would fetch it, which also proves the key opens what the server wrote. One finding per line, one
/// verdict: all hold or not.
/// </summary>
public sealed class ArchiveCheck(IObjectStore store, NpgsqlDataSource db, ArchiveCheckOptions options)
{
    /// <summary>Runs every check that can run (a failed one does not stop the others, unless they depend on it) and returns the findings.</summary>
    public async Task<IReadOnlyList<CheckFinding>> RunAsync(CancellationToken ct)
    {
        var findings = new List<CheckFinding>();
        findings.Add(await ConditionalPutAsync(ct).ConfigureAwait(false));

        await using var conn = await OpenAsync(findings, ct).ConfigureAwait(false);
        if (conn is null) return findings;
        var settings = await SettingsAsync(conn, ct).ConfigureAwait(false);
        var mode = settings.GetValueOrDefault("archive_mode", "");
        findings.Add(new CheckFinding("archive_mode", mode is "on" or "always", mode is "on" or "always"
            ? mode : $"is '{mode}': the server archives nothing (set archive_mode = on and restart it)"));
        findings.Add(ArchiveCommand(settings.GetValueOrDefault("archive_command", ""), settings.GetValueOrDefault("archive_library", "")));
        if (settings.GetValueOrDefault("transaction_read_only", "") == "on" || await InRecoveryAsync(conn, ct).ConfigureAwait(false))
        {
            findings.Add(new CheckFinding("WAL switch", false, "the server is in recovery (a standby): run check against the primary"));
            return findings;
        }
        var segment = await SwitchAsync(conn, findings, ct).ConfigureAwait(false);
        if (segment is not null) await ArrivesAndFetchesAsync(segment, findings, ct).ConfigureAwait(false);
        return findings;
    }

    /// <summary>A new probe is created; the same key written again is refused and the first content stays; the probe is removed.</summary>
    private async Task<CheckFinding> ConditionalPutAsync(CancellationToken ct)
    {
        var key = StoreLayout.NewProbeKey("check");
        try
        {
            var holds = await new StoreCheck(store).ConditionalWriteHonouredAsync(key, ct).ConfigureAwait(false);
            try
            {
                await store.DeleteAsync(key, ct).ConfigureAwait(false);
            }
            catch (ObjectLockedException)
            {
                // A locked store (--lock-days) keeps the probe until its date, as it keeps everything else.
            }
            return new CheckFinding("store refuses overwrites", holds, holds
                ? $"{store.Description}: a conditional put, written again, was refused"
                : $"{store.Description}: a second write of {key} was not refused (or the first was not kept): it cannot be trusted never to overwrite");
        }
        catch (Exception e) when (e is CloudArchiveException or IOException)
        {
            return new CheckFinding("store refuses overwrites", false, $"{store.Description}: {e.Message}");
        }
    }

    private async Task<NpgsqlConnection?> OpenAsync(List<CheckFinding> findings, CancellationToken ct)
    {
        try
        {
            var conn = await db.OpenConnectionAsync(ct).ConfigureAwait(false);
            findings.Add(new CheckFinding("server", true, $"PostgreSQL {conn.PostgreSqlVersion} at {conn.DataSource}"));
            return conn;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            findings.Add(new CheckFinding("server", false, $"cannot connect: {e.Message}"));
            return null;
        }
    }

    private static async Task<Dictionary<string, string>> SettingsAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var cmd = new NpgsqlCommand(
            "select name, setting from pg_catalog.pg_settings where name in ('archive_mode', 'archive_command', 'archive_library', 'transaction_read_only')",
            conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false)) values[reader.GetString(0)] = reader.IsDBNull(1) ? "" : reader.GetString(1);
        return values;
    }

    private static async Task<bool> InRecoveryAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("select pg_catalog.pg_is_in_recovery()", conn);
        return (bool)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>archive_command runs cloudarchive wal-push; a --store it names is this store, a --config it names names this store.</summary>
    private CheckFinding ArchiveCommand(string command, string library)
    {
        const string what = "archive_command";
        if (library.Length > 0)
            return new CheckFinding(what, false, $"archive_library is '{library}': the server archives through that library, not cloudarchive");
        if (command.Trim().Length == 0 || command == "(disabled)")
            return new CheckFinding(what, false, "is empty: set archive_command = 'cloudarchive wal-push %p' (with this store's settings)");
        var words = ShellWords(command);
        var push = words.FindIndex(w => w == "wal-push");
        if (push < 1 || !Path.GetFileName(words[push - 1]).StartsWith("cloudarchive", StringComparison.Ordinal) || !words.Contains("%p"))
            return new CheckFinding(what, false, $"'{command}' does not run cloudarchive wal-push %p");
        var named = Named(words, "--store");
        if (named is null && Named(words, "--config") is { } config)
        {
            named = options.StoreInConfig(config);
            if (named is null)
                return new CheckFinding(what, true, $"'{command}' (the store in {config} could not be read here: the WAL switch below proves where it goes)");
        }
        if (named is not null && !SameStore(named, options.StoreUrl))
            return new CheckFinding(what, false, $"archives into {named}, not into {options.StoreUrl}");
        return new CheckFinding(what, true, $"'{command}'");
    }

    private static string? Named(List<string> words, string flag)
    {
        for (var i = 0; i < words.Count; i++)
        {
            if (words[i] == flag && i + 1 < words.Count) return words[i + 1];
            if (words[i].StartsWith(flag + "=", StringComparison.Ordinal)) return words[i][(flag.Length + 1)..];
        }
        return null;
    }

    private static bool SameStore(string a, string b) => string.Equals(a.TrimEnd('/'), b.TrimEnd('/'), StringComparison.Ordinal);

    /// <summary>The words of a command line as sh would split them (quotes and backslashes), enough to find its arguments.</summary>
    private static List<string> ShellWords(string command)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        var any = false;
        char? quote = null;
        for (var i = 0; i < command.Length; i++)
        {
            var c = command[i];
            if (quote is { } q)
            {
                if (c == q) quote = null;
                else if (c == '\\' && q == '"' && i + 1 < command.Length) word.Append(command[++i]);
                else word.Append(c);
            }
            else if (c is '\'' or '"') { quote = c; any = true; }
            else if (c == '\\' && i + 1 < command.Length) { word.Append(command[++i]); any = true; }
            else if (char.IsWhiteSpace(c))
            {
                if (any || word.Length > 0) words.Add(word.ToString());
                word.Clear();
                any = false;
            }
            else word.Append(c);
        }
        if (any || word.Length > 0) words.Add(word.ToString());
        return words;
    }

    /// <summary>Writes a restore point (so there is WAL to switch away from) and switches: the segment that was completed.</summary>
    private static async Task<string?> SwitchAsync(NpgsqlConnection conn, List<CheckFinding> findings, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand(
                "select pg_catalog.pg_create_restore_point('cloudarchive check'); select pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())", conn);
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await reader.NextResultAsync(ct).ConfigureAwait(false);
            await reader.ReadAsync(ct).ConfigureAwait(false);
            return reader.GetString(0);
        }
        catch (PostgresException e)
        {
            findings.Add(new CheckFinding("WAL switch", false, $"the server refused the switch ({e.MessageText}): run check as a superuser, or a role " +
                "granted EXECUTE on pg_switch_wal and pg_create_restore_point"));
            return null;
        }
    }

    /// <summary>The switched segment is in the store within the deadline, and fetches and verifies (with the key, when there is one).</summary>
    private async Task ArrivesAndFetchesAsync(string segment, List<CheckFinding> findings, CancellationToken ct)
    {
        var into = Path.Combine(options.WorkDirectory, $".cloudarchive-check-{Guid.NewGuid():N}");
        var clock = Stopwatch.StartNew();
        try
        {
            var key = StoreLayout.WalObjectKey(WalFileName.Parse(segment));
            string? unopened = null;
            while (true)
            {
                try
                {
                    if (await store.GetInfoAsync(key, ct).ConfigureAwait(false) is not null) break;
                }
                catch (CloudArchiveException e) when (e.ExitCode != ExitCode.StoreUnavailable)
                {
                    unopened = e.Message; // it is there, and does not open (another key)
                    break;
                }
                if (clock.Elapsed >= options.Deadline)
                {
                    findings.Add(new CheckFinding("WAL switch", false, $"{segment} was not in {options.StoreUrl} after {options.Deadline.TotalSeconds:0} s: " +
                        "the server does not archive into this store (see pg_stat_archiver and the server log)"));
                    return;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
            }
            findings.Add(new CheckFinding("WAL switch", true, $"{segment} arrived in the store after {clock.Elapsed.TotalSeconds:0.0} s"));
            if (unopened is not null)
            {
                findings.Add(new CheckFinding("restore_command", false, $"{segment} does not open: {unopened}"));
                return;
            }
            try
            {
                var fetched = await new WalArchive(store, 1).FetchAsync(segment, into, ct).ConfigureAwait(false);
                findings.Add(fetched.Found
                    ? new CheckFinding("restore_command", true, $"{segment} fetched and verified ({fetched.Size} bytes)" +
                        (options.Encrypted ? ", decrypted with the configured key" : ""))
                    : new CheckFinding("restore_command", false, $"{segment} was in the store and then was not"));
            }
            catch (CloudArchiveException e)
            {
                findings.Add(new CheckFinding("restore_command", false, $"{segment} does not fetch: {e.Message}"));
            }
        }
        finally
        {
            File.Delete(into);
        }
    }
}
