using System.Diagnostics;
using CloudArchive.Native;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using ZstdSharp;

namespace CloudArchive.Core.Backup;

/// <summary>What a restore wrote.</summary>
/// <param name="DataDirectory">The restored data directory.</param>
/// <param name="Files">Files written.</param>
/// <param name="Bytes">Bytes of the files written.</param>
/// <param name="Elapsed">Wall time of the restore.</param>
/// <param name="ConfigLines">The recovery settings written to postgresql.auto.conf.</param>
public sealed record RestoreResult(string DataDirectory, int Files, long Bytes, TimeSpan Elapsed, IReadOnlyList<string> ConfigLines)
{
    /// <summary>Recovery settings found in the backup's postgresql.auto.conf (an earlier restore's) and removed.</summary>
    public IReadOnlyList<string> RemovedSettings { get; init; } = [];
}

/// <summary>
/// restore: downloads a backup's bundles in parallel into an empty directory, verifies every file's
/// SHA-256 against the manifest, recreates tablespaces (optionally moved), writes backup_label, the
/// recovery settings and recovery.signal. It refuses a non-empty directory.
/// </summary>
public sealed class BackupRestorer(IObjectStore store, int jobs, IProgress<long>? progress = null)
{
    private const UnixFileMode DirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Checks where every path of the backup goes (<see cref="RestoreLayout"/>), before anything is written; then
    /// restores into the layout's data directory and the tablespace directories the layout names.
    /// </summary>
    public async Task<RestoreResult> RestoreAsync(RecoveryPlan plan, RestoreLayout layout, string restoreCommand, string? targetAction, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var backup = plan.Backup;
        var targetDir = layout.DataDirectory;
        BackupVersion.RequireConsistent(backup);
        RequireEmpty(targetDir, "the restore directory");
        foreach (var ts in layout.Tablespaces) RequireEmpty(ts.Location, $"tablespace {ts.Name}'s directory");
        // Tell expire this backup and its WAL are in use, from now on and while the download runs.
        var leaseId = RestoreLease.NewId();
        var leased = await TryRenewLeaseAsync(backup, leaseId, ct).ConfigureAwait(false);
        using var renewing = new CancellationTokenSource();
        var renewal = leased ? RenewWhileRunningAsync(backup, leaseId, renewing.Token) : Task.CompletedTask;
        try
        {
            return await RestoreFilesAsync(plan, layout, restoreCommand, targetAction, clock, leased ? leaseId : null, ct).ConfigureAwait(false);
        }
        finally
        {
            await renewing.CancelAsync().ConfigureAwait(false);
            await renewal.ConfigureAwait(false);
        }
    }

    private async Task<bool> TryRenewLeaseAsync(BackupRecord backup, string leaseId, CancellationToken ct)
    {
        try
        {
            await RestoreLease.RenewAsync(store, backup.Id, leaseId, Wal.WalFileName.Parse(backup.StartWalFile), ct).ConfigureAwait(false);
            return true;
        }
        catch (StoreUnavailableException e)
        {
            // A restore with read-only credentials still restores; expire just cannot see it.
            Log.Warn($"could not write a restore lease ({e.Message}): run no expire on this store until the restored server has finished recovery");
            return false;
        }
    }

    private async Task RenewWhileRunningAsync(BackupRecord backup, string leaseId, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(RestoreLease.RenewEvery, ct).ConfigureAwait(false);
                await TryRenewLeaseAsync(backup, leaseId, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // The restore is over.
        }
    }

    private async Task<RestoreResult> RestoreFilesAsync(RecoveryPlan plan, RestoreLayout layout, string restoreCommand, string? targetAction,
        Stopwatch clock, string? leaseId, CancellationToken ct)
    {
        var backup = plan.Backup;
        var targetDir = layout.DataDirectory;
        Directory.CreateDirectory(targetDir, DirMode);
        foreach (var ts in layout.Tablespaces) Directory.CreateDirectory(ts.Location, DirMode);
        var Destination = layout.Destination;

        foreach (var dir in backup.Entries.Where(e => e.Sha256 is null))
        {
            var dest = Destination(dir.Path);
            if (!Directory.Exists(dest)) Directory.CreateDirectory(dest, DirMode);
        }
        Directory.CreateDirectory(Path.Combine(targetDir, "pg_tblspc"), DirMode);
        foreach (var ts in layout.Tablespaces)
            File.CreateSymbolicLink(Path.Combine(targetDir, "pg_tblspc", ts.Oid.ToString(System.Globalization.CultureInfo.InvariantCulture)), ts.Location);

        var expected = backup.Entries.Where(e => e.Sha256 is not null).ToDictionary(e => e.Path, StringComparer.Ordinal);
        var restored = 0;
        long bytes = 0;
        var restoredPaths = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        await Parallel.ForEachAsync(Enumerable.Range(0, backup.Bundles.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, jobs), CancellationToken = ct }, async (i, token) =>
            {
                var bundle = backup.Bundles[i];
                var bound = BundleBound(backup, i);
                await using var obj = await store.OpenReadAsync(bundle.Key, token).ConfigureAwait(false)
                    ?? throw new CorruptObjectException($"backup {backup.Id} is incomplete: {bundle.Key} is missing from {store.Description}");
                try
                {
                    // Never more than the record's files can fill, however small the object that inflates.
                    await using var zstd = new BoundedReadStream(ZstdPipeline.OpenDecompressor(obj.Content), bound, bundle.Key);
                    // zstd on one core, tar + SHA-256 + writes on another: a bundle that is one big relation file still uses two.
                    await using var ahead = new ReadAheadStream(zstd);
                    await using var tar = new TarReader(ahead, leaveOpen: true);
                    while (await tar.GetNextEntryAsync(copyData: false, token).ConfigureAwait(false) is { } entry)
                    {
                        if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                        if (!expected.TryGetValue(entry.Name, out var want))
                            throw new CorruptObjectException($"{bundle.Key} holds {entry.Name}, which backup {backup.Id}'s record does not list");
                        if (want.Bundle != i || entry.Length != want.Size || !restoredPaths.TryAdd(entry.Name, true))
                            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {entry.Name} in {bundle.Key} is not the file its record " +
                                $"lists ({entry.Length} bytes, recorded {want.Size} in bundle {want.Bundle}), or comes twice");
                        var dest = Destination(entry.Name);
                        // Its directory is inside the restore or tablespace directory too (Destination checked the whole path).
                        Directory.CreateDirectory(Path.GetDirectoryName(dest)!, DirMode);
                        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                        await using (var file = new FileStream(dest, new FileStreamOptions
                        {
                            Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 1 << 16, Options = FileOptions.Asynchronous,
                            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                        }))
                        {
                            if (entry.DataStream is { } data) await CopyHashingAsync(data, file, sha, token).ConfigureAwait(false);
                        }
                        var got = Convert.ToHexStringLower(sha.GetHashAndReset());
                        if (got != want.Sha256)
                            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {entry.Name} in {bundle.Key} has SHA-256 {got}, recorded " +
                                $"{want.Sha256}");
                        Interlocked.Increment(ref restored);
                        Interlocked.Add(ref bytes, entry.Length);
                        progress?.Report(entry.Length);
                    }
                }
                catch (Exception e) when (e is ZstdException or InvalidDataException or FormatException or EndOfStreamException)
                {
                    throw new CorruptObjectException($"backup {backup.Id} is corrupt: {bundle.Key} does not decode ({e.Message})", e);
                }
            }).ConfigureAwait(false);
        if (restored != expected.Count)
            throw new CorruptObjectException($"backup {backup.Id} is incomplete: {restored} of {expected.Count} files were found in its bundles");

        await File.WriteAllTextAsync(Path.Combine(targetDir, "backup_label"), backup.BackupLabel, ct).ConfigureAwait(false);
        var lines = RecoveryConfig(plan, restoreCommand, targetAction);
        // A backup of a cluster that was itself restored still carries that restore's settings: they go first.
        var autoConf = Path.Combine(targetDir, "postgresql.auto.conf");
        var (kept, removed) = WithoutRecoverySettings(File.Exists(autoConf) ? await File.ReadAllTextAsync(autoConf, ct).ConfigureAwait(false) : "");
        var temp = autoConf + ".cloudarchive-tmp";
        await File.WriteAllTextAsync(temp, kept.TrimEnd('\n') + $"\n# recovery settings written by cloudarchive restore of backup {backup.Id}\n"
            + string.Join("", lines.Select(l => l + "\n")), ct).ConfigureAwait(false);
        File.Move(temp, autoConf, overwrite: true);
        await File.WriteAllTextAsync(Path.Combine(targetDir, "recovery.signal"), "", ct).ConfigureAwait(false);
        // The restored server's restore_command (wal-fetch) renews the lease from here.
        if (leaseId is not null) await RestoreLease.WriteLocalAsync(targetDir, backup.Id, leaseId, ct).ConfigureAwait(false);
        return new RestoreResult(targetDir, restored, bytes, clock.Elapsed, lines) { RemovedSettings = removed };
    }

    /// <summary>
    /// The most bundle <paramref name="index"/>'s tar can decode to: its files as the record lists them, each with room for its
    /// tar and PAX headers and padding, and the end-of-archive blocks.
    /// </summary>
    private static long BundleBound(BackupRecord backup, int index) =>
        backup.Entries.Where(e => e.Bundle == index).Sum(e => (Math.Max(0, e.Size) + 511) / 512 * 512 + 8192 + 2L * e.Path.Length) + (64 << 10);

    private static readonly string[] RecoverySettings =
    [
        "restore_command", "recovery_target", "recovery_target_time", "recovery_target_xid", "recovery_target_name",
        "recovery_target_lsn", "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action",
        "primary_conninfo", "primary_slot_name",
    ];

    /// <summary>
    /// postgresql.auto.conf without the recovery settings an earlier restore (or a standby) left in it, and the names
    /// removed: with them, a restore to another kind of target fails ("multiple recovery targets specified") and one
    /// without a target silently inherits the old one. CloudArchive's own comment lines go too.
    /// </summary>
    public static (string Kept, List<string> Removed) WithoutRecoverySettings(string autoConf)
    {
        var kept = new System.Text.StringBuilder();
        var removed = new List<string>();
        foreach (var line in autoConf.Split('\n'))
        {
            var trimmed = line.TrimStart();
            var eq = trimmed.IndexOf('=');
            var name = (eq > 0 ? trimmed[..eq] : trimmed.Split(' ', '\t')[0]).Trim().ToLowerInvariant();
            if (RecoverySettings.Contains(name))
            {
                if (!removed.Contains(name)) removed.Add(name);
                continue;
            }
            if (trimmed.StartsWith("# recovery settings written by cloudarchive restore", StringComparison.Ordinal)) continue;
            kept.Append(line).Append('\n');
        }
        return (kept.ToString().TrimEnd('\n') + "\n", removed);
    }

    /// <summary>The recovery settings for <paramref name="plan"/>: restore_command, the recovery_target_* of the target and recovery_target_timeline.</summary>
    private static List<string> RecoveryConfig(RecoveryPlan plan, string restoreCommand, string? targetAction)
    {
        var t = plan.Target;
        var lines = new List<string> { $"restore_command = {Quote(restoreCommand)}" };
        switch (t.Kind)
        {
            case TargetKind.Time: lines.Add($"recovery_target_time = {Quote(t.Value!)}"); break;
            case TargetKind.Lsn: lines.Add($"recovery_target_lsn = {Quote(t.Value!)}"); break;
            case TargetKind.Xid: lines.Add($"recovery_target_xid = {Quote(t.Value!)}"); break;
            case TargetKind.Name: lines.Add($"recovery_target_name = {Quote(t.Value!)}"); break;
            case TargetKind.Immediate: lines.Add("recovery_target = 'immediate'"); break;
        }
        lines.Add($"recovery_target_timeline = {Quote(t.Timeline == "latest" || t.Timeline == "current"
            ? t.Timeline : plan.TargetTimeline.ToString(System.Globalization.CultureInfo.InvariantCulture))}");
        if (t.Kind != TargetKind.EndOfArchive) lines.Add($"recovery_target_action = {Quote(targetAction ?? "pause")}");
        return lines;
    }

    /// <summary>A postgresql.conf string: the file's parser reads backslash escapes and '' inside quotes.</summary>
    public static string Quote(string value) => "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";

    private static void RequireEmpty(string dir, string what)
    {
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            throw new CloudArchiveException(ExitCode.InvalidInput, $"{what} {dir} is not empty; restore only writes into an empty or new directory");
        if (File.Exists(dir))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"{what} {dir} is a file");
    }

    private static async Task CopyHashingAsync(Stream from, Stream to, IncrementalHash sha, CancellationToken ct)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 17);
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer.AsMemory(0, 1 << 17), ct).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
