using System.Diagnostics;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using ZstdSharp;

namespace CloudArchive.Core.Backup;

public sealed record RestoreResult(string DataDirectory, int Files, long Bytes, TimeSpan Elapsed, IReadOnlyList<string> ConfigLines);

/// <summary>
/// restore: downloads a backup's bundles in parallel into an empty directory, verifies every file's
/// SHA-256 against the manifest, recreates tablespaces (optionally moved), writes backup_label, the
/// recovery settings and recovery.signal. It refuses a non-empty directory.
/// </summary>
public sealed class BackupRestorer(IObjectStore store, int jobs, IProgress<long>? progress = null)
{
    private const UnixFileMode DirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public async Task<RestoreResult> RestoreAsync(RecoveryPlan plan, string targetDir, IReadOnlyDictionary<string, string> tablespaceMap,
        string restoreCommand, string? targetAction, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var backup = plan.Backup;
        targetDir = Path.GetFullPath(targetDir);
        RequireEmpty(targetDir, "the restore directory");
        Directory.CreateDirectory(targetDir, DirMode);

        var locations = new Dictionary<uint, string>();
        foreach (var ts in backup.Tablespaces)
        {
            var location = tablespaceMap.TryGetValue(ts.Location, out var moved) ? moved : ts.Location;
            RequireEmpty(location, $"tablespace {ts.Name}'s directory");
            Directory.CreateDirectory(location, DirMode);
            locations[ts.Oid] = Path.GetFullPath(location);
        }
        foreach (var old in tablespaceMap.Keys.Where(k => backup.Tablespaces.All(t => t.Location != k)))
            throw new CloudArchiveException(ExitCode.Usage, $"--tablespace-map {old}=...: backup {backup.Id} has no tablespace at {old}");

        string Destination(string path)
        {
            if (path.StartsWith("pg_tblspc/", StringComparison.Ordinal))
            {
                var rest = path["pg_tblspc/".Length..];
                var slash = rest.IndexOf('/');
                var oid = uint.Parse(slash < 0 ? rest : rest[..slash], System.Globalization.CultureInfo.InvariantCulture);
                return slash < 0 ? locations[oid] : Path.Combine(locations[oid], rest[(slash + 1)..]);
            }
            if (path.Contains("..", StringComparison.Ordinal) || path.StartsWith('/'))
                throw new CorruptObjectException($"backup {backup.Id} names an unsafe path '{path}'");
            return Path.Combine(targetDir, path);
        }

        foreach (var dir in backup.Entries.Where(e => e.Sha256 is null))
        {
            var dest = Destination(dir.Path);
            if (!Directory.Exists(dest)) Directory.CreateDirectory(dest, DirMode);
        }
        Directory.CreateDirectory(Path.Combine(targetDir, "pg_tblspc"), DirMode);
        foreach (var (oid, location) in locations)
            File.CreateSymbolicLink(Path.Combine(targetDir, "pg_tblspc", oid.ToString(System.Globalization.CultureInfo.InvariantCulture)), location);

        var expected = backup.Entries.Where(e => e.Sha256 is not null).ToDictionary(e => e.Path, StringComparer.Ordinal);
        var restored = 0;
        long bytes = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, backup.Bundles.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, jobs), CancellationToken = ct }, async (i, token) =>
            {
                var bundle = backup.Bundles[i];
                await using var obj = await store.OpenReadAsync(bundle.Key, token).ConfigureAwait(false)
                    ?? throw new CorruptObjectException($"backup {backup.Id} is incomplete: {bundle.Key} is missing from {store.Description}");
                try
                {
                    await using var zstd = ZstdPipeline.OpenDecompressor(obj.Content);
                    // zstd on one core, tar + SHA-256 + writes on another: a bundle that is one big relation file still uses two.
                    await using var ahead = new ReadAheadStream(zstd);
                    await using var tar = new TarReader(ahead, leaveOpen: true);
                    while (await tar.GetNextEntryAsync(copyData: false, token).ConfigureAwait(false) is { } entry)
                    {
                        if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                        if (!expected.TryGetValue(entry.Name, out var want))
                            throw new CorruptObjectException($"{bundle.Key} holds {entry.Name}, which backup {backup.Id}'s record does not list");
                        var dest = Destination(entry.Name);
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
                            throw new CorruptObjectException($"backup {backup.Id} is corrupt: {entry.Name} in {bundle.Key} has SHA-256 {got}, recorded {want.Sha256}");
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
        await File.AppendAllTextAsync(Path.Combine(targetDir, "postgresql.auto.conf"),
            $"\n# recovery settings written by cloudarchive restore of backup {backup.Id}\n" + string.Join("", lines.Select(l => l + "\n")), ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(targetDir, "recovery.signal"), "", ct).ConfigureAwait(false);
        return new RestoreResult(targetDir, restored, bytes, clock.Elapsed, lines);
    }

    public static List<string> RecoveryConfig(RecoveryPlan plan, string restoreCommand, string? targetAction)
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
        lines.Add($"recovery_target_timeline = {Quote(t.Timeline == "latest" || t.Timeline == "current" ? t.Timeline : plan.TargetTimeline.ToString(System.Globalization.CultureInfo.InvariantCulture))}");
        if (t.Kind != TargetKind.EndOfArchive) lines.Add($"recovery_target_action = {Quote(targetAction ?? "pause")}");
        return lines;
    }

    private static string Quote(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

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
