using System.Globalization;
using System.Security.Cryptography;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Backup;

/// <summary>What restore --delta kept, rewrote and removed.</summary>
/// <param name="FilesKept">Files that already matched the backup, untouched.</param>
/// <param name="FilesRewritten">Files written (wholly or some of their blocks).</param>
/// <param name="BlocksRewritten">Relation blocks that differed, or were missing, and were written.</param>
/// <param name="BytesRewritten">Bytes the differing blocks and files come to.</param>
/// <param name="Removed">Files and directories that are not in the backup, removed.</param>
public sealed record DeltaReport(int FilesKept, int FilesRewritten, long BlocksRewritten, long BytesRewritten, int Removed);

/// <summary>
/// restore --delta: brings an existing, stopped data directory of the same cluster to a backup. Each relation file's
/// blocks are hashed and compared with the backup's block map, each other file's SHA-256 with its record; only what
/// differs is fetched (from whichever member of the chain holds it), and what the backup does not have is removed,
/// pg_wal's contents included, so no WAL of a diverged timeline is replayed before the archive's.
/// </summary>
public static class DeltaRestore
{
    /// <summary>
    /// Refuses a directory that is not a data directory of the backup's cluster, or that a server runs on, before
    /// anything is changed.
    /// </summary>
    public static void RequireTarget(RestoreLayout layout, BackupRecord backup)
    {
        var dir = layout.DataDirectory;
        if (!Directory.Exists(dir) || !File.Exists(Path.Combine(dir, "PG_VERSION")))
            throw new CloudArchiveException(ExitCode.InvalidInput, $"--delta needs an existing data directory; {dir} has no PG_VERSION (restore without " +
                "--delta into an empty directory)");
        var control = ControlFile.TryRead(dir)
            ?? throw new CloudArchiveException(ExitCode.InvalidInput, $"--delta: {dir} has no readable global/pg_control, so it cannot be shown to be " +
                "a copy of this cluster; restore without --delta into an empty directory");
        if (control.SystemIdentifier.ToString(CultureInfo.InvariantCulture) != backup.SystemIdentifier)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"--delta: {dir} is a data directory of another cluster (system identifier " +
                $"{control.SystemIdentifier}, the backup's is {backup.SystemIdentifier}); nothing was changed");
        if (RunningServer(dir) is { } pid)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"--delta: a server (pid {pid}) is running on {dir}; stop it first (pg_ctl stop), " +
                "nothing was changed");
        foreach (var ts in layout.Tablespaces) RequireTablespace(layout, backup, ts);
    }

    /// <summary>
    /// A tablespace directory that --delta may clean: one the operator named (--tablespace-map), or, in place, the very one this
    /// data directory's pg_tblspc link points to, never a location only the record names (it comes from the store). In it
    /// only the backup's own PG_MAJOR_CATVERSION directory is touched, and a location that holds anything else is refused.
    /// </summary>
    private static void RequireTablespace(RestoreLayout layout, BackupRecord backup, RestoredTablespace ts)
    {
        var oid = ts.Oid.ToString(CultureInfo.InvariantCulture);
        if (!ts.Moved)
        {
            var link = new FileInfo(Path.Combine(layout.DataDirectory, "pg_tblspc", oid));
            var target = link.LinkTarget is { } t ? Path.TrimEndingDirectorySeparator(Path.GetFullPath(t, link.DirectoryName!)) : null;
            if (target != ts.Location)
                throw new CloudArchiveException(ExitCode.Usage, $"--delta --tablespace-in-place: tablespace {RestoreLayout.Printable(ts.Name)} (OID {oid}) " +
                    $"is recorded at {RestoreLayout.Printable(ts.Location)}, but {layout.DataDirectory}'s pg_tblspc/{oid} " +
                    $"{(target is null ? "is no link" : $"links to {target}")}; name the directory with --tablespace-map OLD=NEW; nothing was changed");
        }
        if (!Directory.Exists(ts.Location)) return;
        var own = VersionDirectory(backup, oid);
        var other = Directory.EnumerateFileSystemEntries(ts.Location).Select(Path.GetFileName).FirstOrDefault(n => n != own);
        if (other is not null)
            throw new CloudArchiveException(ExitCode.InvalidInput, $"--delta: tablespace directory {ts.Location} holds {RestoreLayout.Printable(other!)} " +
                $"besides the backup's {own ?? "(none)"}: it is not only this tablespace's; refusing to clean it, nothing was changed");
    }

    /// <summary>The PG_MAJOR_CATVERSION directory the backup holds in tablespace <paramref name="oid"/>; null when it holds none.</summary>
    private static string? VersionDirectory(BackupRecord backup, string oid)
    {
        var prefix = $"pg_tblspc/{oid}/";
        return backup.Entries.Select(e => e.Path.StartsWith("./", StringComparison.Ordinal) ? e.Path[2..] : e.Path)
            .Where(p => p.StartsWith(prefix, StringComparison.Ordinal)).Select(p => p[prefix.Length..].Split('/')[0])
            .FirstOrDefault(d => d.StartsWith("PG_", StringComparison.Ordinal));
    }

    /// <summary>
    /// The pid postmaster.pid names while that process runs a postgres binary; a file left behind by a crash, whose pid
    /// is gone or reused by another program, is not a running server (it is removed with the rest).
    /// </summary>
    private static int? RunningServer(string dir)
    {
        try
        {
            var first = File.ReadLines(Path.Combine(dir, "postmaster.pid")).FirstOrDefault();
            if (!int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) return null;
            var program = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0')[0];
            return Path.GetFileName(program) is "postgres" or "postmaster" ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes what the backup does not have, compares what it has, and returns the part of <paramref name="tasks"/> still
    /// needed: the blocks and files that differ. Every file is left at its recorded size.
    /// </summary>
    public static async Task<(IReadOnlyList<ChainTask> Tasks, DeltaReport Report)> PrepareAsync(IObjectStore store, BackupChain chain, RestoreLayout layout,
        IReadOnlyList<ChainTask> tasks, int jobs, CancellationToken ct)
    {
        var backup = chain.Members[0];
        var blockSize = backup.BlockSize ?? BlockMap.DefaultBlockSize;
        // Every bundle the chain may need is there before the first local file is touched (one HEAD each): a missing one
        // is found now, not half way through rewriting the copy. (Content is checked as it is read.)
        foreach (var task in tasks)
        {
            var key = task.Source.Bundles[task.Bundle].Key;
            if (await store.GetInfoAsync(key, ct).ConfigureAwait(false) is null)
                throw new Pipeline.CorruptObjectException($"backup {task.Source.Id} is incomplete: {key} is missing from {store.Description}; " +
                    "nothing was changed");
        }
        var removed = RemoveOthers(backup, layout);
        var maps = new ChainMaps(store, chain);
        var needed = new System.Collections.Concurrent.ConcurrentDictionary<string, BlockRanges?>(StringComparer.Ordinal);
        int kept = 0, rewritten = 0;
        long blocks = 0, bytes = 0;
        var files = backup.Entries.Where(e => e.Sha256 is not null).ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, jobs), CancellationToken = ct }, async (file, token) =>
        {
            var dest = layout.Destination(file.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            await using var local = new FileStream(dest, new FileStreamOptions
            {
                Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            if (!file.Blocks)
            {
                if (local.Length == file.Size && Convert.ToHexStringLower(await SHA256.HashDataAsync(local, token).ConfigureAwait(false)) == file.Sha256)
                {
                    Interlocked.Increment(ref kept);
                    return;
                }
                local.SetLength(0);
                needed[file.Path] = null;
                Interlocked.Increment(ref rewritten);
                Interlocked.Add(ref bytes, file.Size);
                return;
            }
            var map = await maps.MapAsync(file, token).ConfigureAwait(false);
            var differ = BlockRanges.FromSorted(DifferingBlocks(local, file.Size, blockSize, map));
            local.SetLength(file.Size);
            if (differ.IsEmpty)
            {
                Interlocked.Increment(ref kept);
                return;
            }
            needed[file.Path] = differ;
            Interlocked.Increment(ref rewritten);
            Interlocked.Add(ref blocks, differ.Count);
            Interlocked.Add(ref bytes, BlockMap.StoredBytes(differ, file.Size, blockSize));
        }).ConfigureAwait(false);

        var remaining = new List<ChainTask>();
        foreach (var task in tasks)
        {
            var pieces = new Dictionary<string, ChainPiece>(StringComparer.Ordinal);
            foreach (var (path, piece) in task.Pieces)
            {
                if (!needed.TryGetValue(piece.Target.Path, out var differ)) continue;
                if (piece.Take is null) pieces[path] = piece;
                else if (differ is not null && piece.Take.Intersect(differ) is { IsEmpty: false } take) pieces[path] = piece with { Take = take };
            }
            if (pieces.Count > 0) remaining.Add(task with { Pieces = pieces });
        }
        return (remaining, new DeltaReport(kept, rewritten, blocks, bytes, removed));
    }

    /// <summary>The blocks of the local file that differ from the map (a block past its end differs).</summary>
    private static List<long> DifferingBlocks(FileStream local, long size, int blockSize, byte[] map)
    {
        var differ = new List<long>();
        var count = BlockMap.BlockCount(size, blockSize);
        var localSize = local.Length;
        const int Batch = 128;
        var buffer = new byte[Batch * blockSize];
        Span<byte> hash = stackalloc byte[BlockMap.HashBytes];
        for (long first = 0; first < count; first += Batch)
        {
            var n = (int)Math.Min(Batch, count - first);
            var want = (int)Math.Min((long)n * blockSize, size - first * blockSize);
            var got = first * blockSize >= localSize ? 0 : RandomAccess.Read(local.SafeFileHandle, buffer.AsSpan(0, want), first * blockSize);
            while (got < want && first * blockSize + got < localSize)
            {
                var more = RandomAccess.Read(local.SafeFileHandle, buffer.AsSpan(got, want - got), first * blockSize + got);
                if (more == 0) break;
                got += more;
            }
            for (var i = 0; i < n; i++)
            {
                var j = first + i;
                var start = i * blockSize;
                var length = BlockMap.BlockLength(j, size, blockSize);
                if (start + length > got) { differ.Add(j); continue; }
                BlockMap.Hash(buffer.AsSpan(start, length), hash);
                if (!hash.SequenceEqual(map.AsSpan((int)(j * BlockMap.HashBytes), BlockMap.HashBytes))) differ.Add(j);
            }
        }
        return differ;
    }

    /// <summary>
    /// Removes every file, link and directory under the data directory and the tablespace directories that the backup
    /// does not list (never following a link out), and pg_tblspc's links, which the restore makes anew. Returns how many.
    /// </summary>
    private static int RemoveOthers(BackupRecord backup, RestoreLayout layout)
    {
        // Destination, directory or not.
        var listed = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var e in backup.Entries) listed[layout.Destination(e.Path)] = e.Sha256 is null;
        var removed = 0;
        var tblspc = Path.Combine(layout.DataDirectory, "pg_tblspc");
        var walLink = Path.Combine(layout.DataDirectory, "pg_wal");
        void Walk(string dir)
        {
            foreach (var child in new DirectoryInfo(dir).EnumerateFileSystemInfos())
            {
                // pg_wal linked to another disk (initdb --waldir) stays linked; only the WAL in it goes.
                if (child.FullName == walLink && child.LinkTarget is not null && Directory.Exists(child.FullName))
                {
                    removed += RemoveWal(child.FullName);
                    continue;
                }
                var isDir = child is DirectoryInfo && child.LinkTarget is null;
                if (dir == tblspc || !listed.TryGetValue(child.FullName, out var listedDir) || listedDir != isDir)
                {
                    if (isDir) Directory.Delete(child.FullName, recursive: true); else child.Delete();
                    removed++;
                }
                else if (isDir) Walk(child.FullName);
                else if (child.LinkTarget is not null) { child.Delete(); removed++; }
            }
        }
        Walk(layout.DataDirectory);
        // Only the backup's own version directory in each tablespace (RequireTablespace refused a location holding more).
        foreach (var ts in layout.Tablespaces)
            if (VersionDirectory(backup, ts.Oid.ToString(CultureInfo.InvariantCulture)) is { } own && Directory.Exists(Path.Combine(ts.Location, own)))
                Walk(Path.Combine(ts.Location, own));
        return removed;
    }

    /// <summary>
    /// Empties a pg_wal that is a link to another directory of only what PostgreSQL puts there (WAL and history files,
    /// archive_status markers, its temp files): the link's target is outside the data directory, so nothing else in it is
    /// touched.
    /// </summary>
    private static int RemoveWal(string walDir)
    {
        var removed = 0;
        foreach (var file in Directory.EnumerateFiles(walDir))
            if (WalFileName.TryParse(Path.GetFileName(file), out _) || Path.GetFileName(file).StartsWith("xlogtemp.", StringComparison.Ordinal))
            {
                File.Delete(file);
                removed++;
            }
        var status = Path.Combine(walDir, "archive_status");
        if (Directory.Exists(status) && new DirectoryInfo(status).LinkTarget is null)
            foreach (var file in Directory.EnumerateFiles(status))
                if (file.EndsWith(".ready", StringComparison.Ordinal) || file.EndsWith(".done", StringComparison.Ordinal))
                {
                    File.Delete(file);
                    removed++;
                }
        return removed;
    }
}
