using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Backup;

/// <summary>What one bundle of one backup of a chain gives a restore: for each of its files, all of it or some blocks.</summary>
/// <param name="Source">The backup whose bundle it is.</param>
/// <param name="Bundle">The bundle's index in <paramref name="Source"/>.</param>
/// <param name="Pieces">By path: what to take from that path's tar entry.</param>
public sealed record ChainTask(BackupRecord Source, int Bundle, IReadOnlyDictionary<string, ChainPiece> Pieces);

/// <summary>Part of a restored file that one bundle holds.</summary>
/// <param name="Target">The file as the restored backup records it.</param>
/// <param name="Held">The file as the bundle's own backup records it (its tar entry's content and block map).</param>
/// <param name="Take">For a relation file, the blocks to take from the entry; null for a whole file.</param>
public sealed record ChainPiece(BackupEntry Target, BackupEntry Held, BlockRanges? Take);

/// <summary>
/// A backup and the backups it builds on, newest first and a full backup last, checked record by record: each
/// reference exists, is of the same cluster, major and block size, and ended before the next began. Resolving tells
/// which bundle of which member holds each block of every file, so a restore reads each needed bundle once, in
/// parallel, and never one it does not need.
/// </summary>
public sealed class BackupChain
{
    private BackupChain(IReadOnlyList<BackupRecord> members) => Members = members;

    /// <summary>The backup restored first, then its reference, ..., then the full backup.</summary>
    public IReadOnlyList<BackupRecord> Members { get; }

    /// <summary>Stored bytes of every member: the most a restore downloads.</summary>
    public long StoredSize => Members.Sum(m => m.StoredSize);

    /// <summary>"incr X &lt;- diff Y &lt;- full Z".</summary>
    public string Describe() => string.Join(" <- ", Members.Select(m => $"{m.Kind} {m.Id}"));

    /// <summary>
    /// The chain of <paramref name="backup"/> among <paramref name="all"/>; a <see cref="CloudArchiveException"/> with
    /// <see cref="ExitCode.NoRecoveryPath"/> naming the broken link when a reference is missing or does not fit.
    /// </summary>
    public static BackupChain Resolve(BackupRecord backup, IReadOnlyList<BackupRecord> all)
    {
        var byId = new Dictionary<string, BackupRecord>(StringComparer.Ordinal);
        foreach (var b in all) byId.TryAdd(b.Id, b);
        var members = new List<BackupRecord> { backup };
        var current = backup;
        while (current.Kind != BackupKinds.Full)
        {
            if (current.Kind is not (BackupKinds.Diff or BackupKinds.Incr) || current.Reference is null || current.BlockSize is null)
                throw new CorruptObjectException($"backup {current.Id}'s record is corrupt: type '{Printable(current.Type)}' without a reference " +
                    "and block size");
            if (!byId.TryGetValue(current.Reference, out var reference))
                throw Broken(backup, $"{current.Id} builds on {Printable(current.Reference)}, which is not in the store (removed, or its record " +
                    "unreadable)");
            if (members.Contains(reference) || members.Count > 10_000)
                throw new CorruptObjectException($"backup {backup.Id}'s chain is corrupt: it loops back to {reference.Id}");
            if (reference.SystemIdentifier != current.SystemIdentifier || reference.ServerVersionNum / 10000 != current.ServerVersionNum / 10000
                || reference.BlockSize != current.BlockSize || reference.StopTime > current.StartTime
                || (current.Kind == BackupKinds.Diff && reference.Kind != BackupKinds.Full))
                throw Broken(backup, $"{current.Id} builds on {reference.Id}, which is not a backup it can build on (another cluster, major or " +
                    "block size, or a later one)");
            members.Add(reference);
            current = reference;
        }
        if (current.Reference is not null)
            throw new CorruptObjectException($"backup {current.Id}'s record is corrupt: a full backup with a reference");
        return new BackupChain(members);
    }

    /// <summary>
    /// Which bundle of which member holds each file of the newest member, and which of its blocks: each block comes from
    /// the newest member that stored it. A file or block no member holds, or records that disagree, break the chain.
    /// </summary>
    public IReadOnlyList<ChainTask> Plan()
    {
        var target = Members[0];
        var blockSize = target.BlockSize ?? BlockMap.DefaultBlockSize;
        var files = Members.Select(m => m.Entries.Where(e => e.Sha256 is not null)
            .GroupBy(e => e.Path, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal)).ToList();
        var tasks = new Dictionary<(int Member, int Bundle), Dictionary<string, ChainPiece>>();
        void Add(int member, BackupEntry held, ChainPiece piece)
        {
            if (!tasks.TryGetValue((member, held.Bundle), out var pieces)) tasks[(member, held.Bundle)] = pieces = new(StringComparer.Ordinal);
            pieces[held.Path] = piece;
        }

        foreach (var entry in files[0].Values)
        {
            if (!entry.Blocks)
            {
                for (var k = 0; ; k++)
                {
                    if (k == Members.Count || !files[k].TryGetValue(entry.Path, out var held) || held.Blocks || held.Size != entry.Size
                        || held.Sha256 != entry.Sha256)
                        throw Broken(target, $"{entry.Path} is recorded unchanged since {Members[Math.Min(k, Members.Count - 1)].Id}, " +
                            "which does not hold it as recorded");
                    if (held.Stored is null) { Add(k, held, new ChainPiece(entry, held, null)); break; }
                    if (held.Stored.Length != 0) throw new CorruptObjectException($"backup {Members[k].Id}'s record is corrupt: {held.Path} has blocks " +
                        "but is not a relation file");
                }
                continue;
            }
            var unresolved = BlockRanges.All(BlockMap.BlockCount(entry.Size, blockSize));
            for (var k = 0; !unresolved.IsEmpty; k++)
            {
                if (k == Members.Count || !files[k].TryGetValue(entry.Path, out var held) || !held.Blocks)
                    throw Broken(target, $"blocks of {entry.Path} are recorded unchanged since {Members[Math.Min(k, Members.Count - 1)].Id}, " +
                        "which does not hold them");
                var count = BlockMap.BlockCount(held.Size, blockSize);
                var stored = held.Stored is null ? BlockRanges.All(count) : BlockRanges.TryParse(held.Stored, count)
                    ?? throw new CorruptObjectException($"backup {Members[k].Id}'s record is corrupt: {held.Path} lists blocks '{Printable(held.Stored)}'");
                var take = unresolved.Intersect(stored);
                if (take.IsEmpty) continue;
                Add(k, held, new ChainPiece(entry, held, take));
                unresolved = unresolved.Except(take);
            }
        }
        return tasks.OrderBy(t => t.Key.Member).ThenBy(t => t.Key.Bundle)
            .Select(t => new ChainTask(Members[t.Key.Member], t.Key.Bundle, t.Value)).ToList();
    }

    private static CloudArchiveException Broken(BackupRecord backup, string why) =>
        new(ExitCode.NoRecoveryPath, $"backup {backup.Id} cannot be restored: its chain is broken: {why}");

    private static string Printable(string? s) => s is null ? "" : RestoreLayout.Printable(s);
}
