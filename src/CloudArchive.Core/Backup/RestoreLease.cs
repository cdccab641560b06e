using CloudArchive.Core.Manifest;
using System.Globalization;
using System.Text;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Backup;

/// <summary>One renewal of a restore's lease, as read back from its key.</summary>
/// <param name="Position">The WAL segment the restore had reached: it needs that one and every later one.</param>
public sealed record LeaseRenewal(string BackupId, string LeaseId, DateTimeOffset At, string Position);

/// <summary>
/// A restore in progress tells expire what it still needs, append-only: <c>leases/BACKUP/LEASE-TIME-SEGMENT</c>, one new
/// object per renewal (never one rewritten). restore writes one when it starts and one every
/// <see cref="RenewEvery"/> while it downloads; wal-fetch, as the restored server's restore_command, writes one at most
/// every <see cref="RenewEvery"/> with the segment it fetched (found through <see cref="LocalFile"/> in the data
/// directory). expire keeps, for every renewal younger than <see cref="Ttl"/> (by its own clock), the backup while the
/// restore has not passed its end, and the WAL from the restore's position on.
/// </summary>
internal static class RestoreLease
{
    /// <summary>Where the restored data directory remembers its lease: pg_wal/.cloudarchive/lease.</summary>
    public static string LocalFile(string dataDirectory) => Path.Combine(dataDirectory, "pg_wal", Spool.SpoolLocation.DirectoryName, "lease");

    public static readonly TimeSpan RenewEvery = TimeSpan.FromMinutes(10);
    public static readonly TimeSpan Ttl = TimeSpan.FromHours(1);

    public static string NewId() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    /// <summary>Writes one renewal: the lease of <paramref name="leaseId"/> on <paramref name="backupId"/>, now, at <paramref name="position"/>.</summary>
    public static async Task RenewAsync(IObjectStore store, string backupId, string leaseId, WalFileName position, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var key = $"{StoreLayout.LeasePrefix}{backupId}/{leaseId}-{now:yyyyMMdd'T'HHmmss'Z'}-{position.Name}";
        using var body = new MemoryStream(Encoding.UTF8.GetBytes(
            $"{{\"backup\":\"{backupId}\",\"lease\":\"{leaseId}\",\"at\":\"{now:O}\","
            + $"\"position\":\"{position.Name}\",\"host\":\"{Environment.MachineName}\"}}\n"));
        await store.PutIfAbsentAsync(key, body, new ObjectMetadata(), ct).ConfigureAwait(false);
    }

    /// <summary>The renewal a key names; null for keys that are not renewals.</summary>
    public static LeaseRenewal? Parse(string key)
    {
        if (!key.StartsWith(StoreLayout.LeasePrefix, StringComparison.Ordinal)) return null;
        var parts = key[StoreLayout.LeasePrefix.Length..].Split('/');
        if (parts.Length != 2) return null;
        var fields = parts[1].Split('-');
        if (fields.Length != 3 || !WalFileName.TryParse(fields[2], out var position) || position.Kind != WalFileKind.Segment
            || !DateTimeOffset.TryParseExact(fields[1], "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            return null;
        return new LeaseRenewal(parts[0], fields[0], at, position.Name);
    }

    /// <summary>Every lease's newest renewal, if it is younger than <see cref="Ttl"/>: the restores still running.</summary>
    public static async Task<List<LeaseRenewal>> LiveAsync(IObjectStore store, DateTimeOffset now, CancellationToken ct)
    {
        var newest = new Dictionary<string, LeaseRenewal>(StringComparer.Ordinal);
        await foreach (var item in store.ListAsync(StoreLayout.LeasePrefix, ct).ConfigureAwait(false))
            if (Parse(item.Key) is { } r && (!newest.TryGetValue(r.LeaseId, out var seen) || seen.At < r.At))
                newest[r.LeaseId] = r;
        return newest.Values.Where(r => r.At > now - Ttl).ToList();
    }

    /// <summary>
    /// restore_command's renewal: when the data directory has a lease and its last renewal is older than
    /// <see cref="RenewEvery"/>, writes one at <paramref name="position"/>. Never fails the fetch: a lease only helps expire.
    /// </summary>
    public static async Task RenewFromDataDirectoryAsync(IObjectStore store, string dataDirectory, WalFileName position, CancellationToken ct)
    {
        var file = LocalFile(dataDirectory);
        try
        {
            if (!File.Exists(file)) return;
            var fields = (await File.ReadAllTextAsync(file, ct).ConfigureAwait(false)).Trim().Split(' ');
            if (fields.Length != 3 || !long.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var last)) return;
            if (DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeSeconds(last) < RenewEvery) return;
            await RenewAsync(store, fields[0], fields[1], position, ct).ConfigureAwait(false);
            await WriteLocalAsync(dataDirectory, fields[0], fields[1], ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CloudArchiveException or IOException or UnauthorizedAccessException)
        {
            Log.Warn($"could not renew the restore lease: {e.Message}");
        }
    }

    /// <summary>Records in the restored data directory which lease to renew, and when it last was.</summary>
    public static async Task WriteLocalAsync(string dataDirectory, string backupId, string leaseId, CancellationToken ct)
    {
        var file = LocalFile(dataDirectory);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temp = file + ".tmp";
        await File.WriteAllTextAsync(temp, $"{backupId} {leaseId} {DateTimeOffset.UtcNow.ToUnixTimeSeconds()}\n", ct).ConfigureAwait(false);
        File.Move(temp, file, overwrite: true);
    }
}
