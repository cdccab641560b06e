using System.Globalization;
using System.Text.RegularExpressions;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Backup;

/// <summary>A WAL summary the server keeps (pg_available_wal_summaries): the blocks the WAL from Start to End (exclusive) on Timeline touched.</summary>
public readonly record struct WalSummaryFile(uint Timeline, Lsn Start, Lsn End);

/// <summary>
/// One row of pg_wal_summary_contents: a block of a relation fork that the WAL touched, or (<paramref name="IsLimit"/>) the
/// length the fork was cut to at some point (truncated, created, dropped): from that block on, the reference's blocks are
/// not this file's. Relfilenode 0 is the database as a whole (created or dropped: none of its files is the reference's).
/// </summary>
public readonly record struct WalSummaryRow(uint RelFileNode, uint TableSpace, uint Database, short Fork, long Block, bool IsLimit);

/// <summary>
/// Which blocks of a relation file an incremental must read, when PostgreSQL's WAL summaries (17+, summarize_wal) prove
/// the rest unchanged since the reference's start: the blocks the summaries list, every block from a limit block on, and
/// every block the reference does not have. A block the WAL did not touch between the reference's start LSN and this
/// backup's is the reference's (a change after this backup's start is replayed from its full-page image, as for any page
/// read while it changes). Where the summaries prove nothing, the file is read whole and compared block by block with the
/// reference's map, as without them: a new file, another fork than main (the free space map is not WAL-logged, the
/// visibility map's truncation not always, an init fork is tiny), an unlogged relation (its main fork is not WAL-logged),
/// a database created or dropped since, a size not a whole number of blocks, a file shorter than the reference's where no
/// truncation the summaries show explains it. The plan is filled (<see cref="Add"/>), sealed, then read by every bundle
/// at once.
/// </summary>
public sealed partial class WalSummaryPlan
{
    /// <summary>Rows held at most (4 bytes each): beyond, the backup reads every file rather than grow its memory with the change.</summary>
    public const int MaxBlocks = 8 << 20;

    private const uint GlobalTablespace = 1664, DefaultTablespace = 1663;
    private readonly int _blockSize;
    private readonly long _segmentBlocks;
    private readonly Dictionary<(uint Spc, uint Db, uint Rel), ForkChanges> _forks = [];
    private readonly HashSet<(uint Spc, uint Db)> _databases = [];
    private readonly HashSet<(uint Spc, uint Db, uint Rel)> _unlogged = [];
    private long _rows, _bySummary, _whole, _blocksRead;
    private bool _sealed;

    private sealed class ForkChanges
    {
        public long Limit = long.MaxValue;
        public List<uint> Blocks = [];
    }

    /// <param name="blockSize">The cluster's page size.</param>
    /// <param name="segmentBlocks">Blocks in a relation segment file (segment_size / block_size).</param>
    /// <param name="paths">Every file this backup reads (an init fork marks its relation unlogged).</param>
    public WalSummaryPlan(int blockSize, long segmentBlocks, IEnumerable<string> paths)
    {
        _blockSize = blockSize;
        _segmentBlocks = segmentBlocks;
        foreach (var p in paths)
            if (RelationFile.Parse(p) is { Fork: RelationFile.InitFork } f) _unlogged.Add((f.Spc, f.Db, f.Rel));
    }

    /// <summary>
    /// The summaries of <paramref name="timeline"/> that together cover <paramref name="from"/> to <paramref name="to"/>
    /// without a gap; null when they do not, <paramref name="missing"/> then saying where.
    /// </summary>
    public static IReadOnlyList<WalSummaryFile>? Covering(IEnumerable<WalSummaryFile> available, uint timeline, Lsn from, Lsn to, out string missing)
    {
        missing = "";
        if (from > to)
        {
            missing = $"the reference starts at {from}, after this backup's start {to}";
            return null;
        }
        var needed = available.Where(s => s.Timeline == timeline && s.End > from && s.Start < to && s.End > s.Start)
            .OrderBy(s => s.Start).ThenBy(s => s.End).ToList();
        var reached = from;
        foreach (var s in needed)
        {
            if (s.Start > reached) break;
            if (s.End > reached) reached = s.End;
        }
        if (reached >= to) return needed;
        missing = $"no WAL summary on timeline {timeline} covers {reached} (summaries are needed from {from} to {to})";
        return null;
    }

    /// <summary>
    /// Takes one row; false when the plan would hold more than <see cref="MaxBlocks"/> rows (then it must not be used). A
    /// block number no relation can have is an <see cref="InvalidDataException"/>: the rows cannot be trusted to be whole.
    /// </summary>
    public bool Add(WalSummaryRow row)
    {
        if (_sealed) throw new InvalidOperationException("the plan is sealed");
        if (row.Block < 0 || row.Block > uint.MaxValue)
            throw new InvalidDataException($"a WAL summary row names block {row.Block} of relfilenode {row.RelFileNode}");
        if (row.RelFileNode == 0)
        {
            _databases.Add((row.TableSpace, row.Database));
            return true;
        }
        // Only main forks are read by summary (the others whole), so only theirs are kept.
        if (row.Fork != RelationFile.MainFork) return true;
        if (!_forks.TryGetValue((row.TableSpace, row.Database, row.RelFileNode), out var fork))
            _forks[(row.TableSpace, row.Database, row.RelFileNode)] = fork = new ForkChanges();
        if (row.IsLimit)
        {
            fork.Limit = Math.Min(fork.Limit, row.Block);
            return true;
        }
        fork.Blocks.Add((uint)row.Block);
        return ++_rows <= MaxBlocks;
    }

    /// <summary>Ends the filling: the lists are sorted once, so that bundles can read them at once.</summary>
    public WalSummaryPlan Seal()
    {
        foreach (var fork in _forks.Values)
        {
            fork.Blocks.Sort();
            var unique = 0;
            for (var i = 0; i < fork.Blocks.Count; i++)
                if (i == 0 || fork.Blocks[i] != fork.Blocks[unique - 1]) fork.Blocks[unique++] = fork.Blocks[i];
            fork.Blocks.RemoveRange(unique, fork.Blocks.Count - unique);
        }
        _sealed = true;
        return this;
    }

    /// <summary>Relation files read by summary so far.</summary>
    public long FilesBySummary => Interlocked.Read(ref _bySummary);

    /// <summary>Files read whole so far (and compared with the reference where it has them).</summary>
    public long FilesReadWhole => Interlocked.Read(ref _whole);

    /// <summary>Blocks read of the files read by summary.</summary>
    public long BlocksRead => Interlocked.Read(ref _blocksRead);

    /// <summary>
    /// The blocks of the file at <paramref name="path"/> (<paramref name="size"/> bytes now) to read, the others being its
    /// reference's (<paramref name="was"/>); null: read it whole. Counted either way.
    /// </summary>
    public BlockRanges? BlocksToRead(string path, long size, BackupEntry? was)
    {
        if (!_sealed) throw new InvalidOperationException("the plan is not sealed");
        var blocks = Decide(path, size, was);
        if (blocks is null) Interlocked.Increment(ref _whole);
        else
        {
            Interlocked.Increment(ref _bySummary);
            Interlocked.Add(ref _blocksRead, blocks.Count);
        }
        return blocks;
    }

    private BlockRanges? Decide(string path, long size, BackupEntry? was)
    {
        if (was is not { Blocks: true } || RelationFile.Parse(path) is not { Fork: RelationFile.MainFork } file) return null;
        if (_unlogged.Contains((file.Spc, file.Db, file.Rel)) || _databases.Contains((file.Spc, file.Db))) return null;
        if (size % _blockSize != 0 || was.Size % _blockSize != 0 || size / _blockSize > _segmentBlocks) return null;
        long count = size / _blockSize, had = was.Size / _blockSize, first = file.Segment * _segmentBlocks;
        _forks.TryGetValue((file.Spc, file.Db, file.Rel), out var fork);
        // From here on the reference holds nothing of this file: beyond its end, or from where the fork was cut.
        var readFrom = had;
        if (fork is not null && fork.Limit != long.MaxValue)
        {
            if (fork.Limit <= first) return null;
            readFrom = Math.Min(readFrom, fork.Limit - first);
        }
        // Shorter than the reference's with no cut the summaries show (truncated after this backup's start, or never
        // summarised): nothing proves which blocks are whose.
        if (count < had && readFrom > count) return null;
        return BlockRanges.FromSorted(Listed(fork, first, Math.Min(count, readFrom)).Concat(Run(readFrom, count)));
    }

    /// <summary>The listed blocks of <paramref name="fork"/> from <paramref name="first"/> on, below <paramref name="end"/> blocks of it, relative to the file.</summary>
    private static IEnumerable<long> Listed(ForkChanges? fork, long first, long end)
    {
        if (fork is null) yield break;
        var blocks = fork.Blocks;
        int lo = 0, hi = blocks.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (blocks[mid] < first) lo = mid + 1; else hi = mid;
        }
        for (var i = lo; i < blocks.Count && blocks[i] - first < end; i++) yield return blocks[i] - first;
    }

    private static IEnumerable<long> Run(long from, long to)
    {
        for (var b = from; b < to; b++) yield return b;
    }

    /// <summary>A relation file's path in a backup, as PostgreSQL names it: tablespace, database, relfilenode, fork, segment.</summary>
    private readonly partial record struct RelationFile(uint Spc, uint Db, uint Rel, int Fork, long Segment)
    {
        public const int MainFork = 0, InitFork = 3;

        [GeneratedRegex(@"^(?:global|base/(\d+)|pg_tblspc/(\d+)/PG_[^/]+/(\d+))/(\d+)(?:_(fsm|vm|init))?(?:\.(\d+))?$")]
        private static partial Regex Pattern();

        public static RelationFile? Parse(string path)
        {
            var m = Pattern().Match(path);
            if (!m.Success) return null;
            uint spc, db;
            if (m.Groups[1].Success) (spc, db) = (DefaultTablespace, Oid(m.Groups[1].Value) ?? 0);
            else if (m.Groups[2].Success) (spc, db) = (Oid(m.Groups[2].Value) ?? 0, Oid(m.Groups[3].Value) ?? 0);
            else (spc, db) = (GlobalTablespace, 0);
            var rel = Oid(m.Groups[4].Value) ?? 0;
            if (spc == 0 || rel == 0 || (db == 0 && spc != GlobalTablespace)) return null;
            var fork = m.Groups[5].Value switch { "fsm" => 1, "vm" => 2, "init" => 3, _ => MainFork };
            var segment = m.Groups[6].Success ? Oid(m.Groups[6].Value) : 0;
            return segment is null ? null : new RelationFile(spc, db, rel, fork, segment.Value);
        }

        private static uint? Oid(string digits) =>
            uint.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
    }
}
