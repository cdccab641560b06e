using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The whole block map of a file as a chain's newest backup has it, composed from the maps its members stored: each
/// block's hash from the newest member that stored the block. What an incremental compares with, and what a delta
/// restore compares the local files with.
/// </summary>
public sealed class ChainMaps
{
    private readonly BackupChain _chain;
    private readonly List<BackupMaps> _members;

    /// <param name="advice">Appended to the message when a map is damaged (what the operator should do).</param>
    public ChainMaps(IObjectStore store, BackupChain chain, string advice = "")
    {
        _chain = chain;
        _members = chain.Members.Select(m => new BackupMaps(store, m, advice)).ToList();
    }

    /// <summary>The chain's newest backup.</summary>
    public BackupRecord Head => _chain.Members[0];

    /// <summary>The newest backup's file at <paramref name="path"/>; null when it has none.</summary>
    public BackupEntry? Find(string path) => _members[0].Find(path);

    /// <summary>The hash of every block of <paramref name="entry"/> (a relation file of the newest backup), in order.</summary>
    public async Task<byte[]> MapAsync(BackupEntry entry, CancellationToken ct)
    {
        var blockSize = Head.BlockSize ?? BlockMap.DefaultBlockSize;
        var count = BlockMap.BlockCount(entry.Size, blockSize);
        var map = new byte[count * BlockMap.HashBytes];
        var unresolved = BlockRanges.All(count);
        for (var k = 0; !unresolved.IsEmpty; k++)
        {
            if (k == _members.Count || _members[k].Find(entry.Path) is not { Blocks: true } held)
                throw new CloudArchiveException(ExitCode.NoRecoveryPath, $"backup {Head.Id}'s chain is broken: blocks of {entry.Path} are recorded " +
                    $"unchanged since {_chain.Members[Math.Min(k, _members.Count - 1)].Id}, which does not hold them");
            var stored = _members[k].Stored(held);
            if (unresolved.Intersect(stored).IsEmpty) continue;
            var slice = await _members[k].SliceAsync(held, ct).ConfigureAwait(false);
            var rank = 0;
            foreach (var j in stored.Blocks())
            {
                if (j < count && unresolved.Contains(j))
                    slice.Span.Slice(rank * BlockMap.HashBytes, BlockMap.HashBytes).CopyTo(map.AsSpan((int)(j * BlockMap.HashBytes)));
                rank++;
            }
            unresolved = unresolved.Except(stored);
        }
        return map;
    }
}
