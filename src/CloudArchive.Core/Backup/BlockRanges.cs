using System.Globalization;
using System.Text;

namespace CloudArchive.Core.Backup;

/// <summary>
/// A set of block numbers as sorted, disjoint, non-adjacent runs: how a record says which blocks of a relation file a
/// backup stored ("0-5,9,12-40"). Small when few runs changed, whatever the file's size.
/// </summary>
public sealed class BlockRanges
{
    private readonly List<(long First, long Last)> _runs;

    private BlockRanges(List<(long First, long Last)> runs) => _runs = runs;

    /// <summary>No block.</summary>
    public static BlockRanges Empty => new([]);

    /// <summary>Blocks 0 to <paramref name="count"/> - 1.</summary>
    public static BlockRanges All(long count) => count <= 0 ? Empty : new([(0, count - 1)]);

    /// <summary>The runs, first and last block inclusive.</summary>
    public IReadOnlyList<(long First, long Last)> Runs => _runs;

    /// <summary>How many blocks the set holds.</summary>
    public long Count => _runs.Sum(r => r.Last - r.First + 1);

    /// <summary>Whether the set holds no block.</summary>
    public bool IsEmpty => _runs.Count == 0;

    /// <summary>Blocks <paramref name="first"/> to <paramref name="last"/>.</summary>
    public static BlockRanges FromRun(long first, long last) => last < first ? Empty : new([(first, last)]);

    /// <summary>The set of the ascending block numbers <paramref name="blocks"/>.</summary>
    public static BlockRanges FromSorted(IEnumerable<long> blocks)
    {
        var runs = new List<(long, long)>();
        long first = -1, last = -2;
        foreach (var b in blocks)
        {
            if (b <= last) throw new ArgumentException("block numbers must ascend", nameof(blocks));
            if (b == last + 1) { last = b; continue; }
            if (first >= 0) runs.Add((first, last));
            first = last = b;
        }
        if (first >= 0) runs.Add((first, last));
        return new(runs);
    }

    /// <summary>
    /// Parses a record's text; null when it is not well formed or names a block at or beyond <paramref name="limit"/>
    /// (a record read from the store is not trusted to be sane).
    /// </summary>
    public static BlockRanges? TryParse(string text, long limit)
    {
        var runs = new List<(long, long)>();
        if (text.Length == 0) return new(runs);
        long previous = -2;
        foreach (var part in text.Split(','))
        {
            var dash = part.IndexOf('-');
            if (!long.TryParse(dash < 0 ? part : part[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var first)) return null;
            var last = first;
            if (dash >= 0 && !long.TryParse(part[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out last)) return null;
            if (last < first || first <= previous + 1 || last >= limit) return null;
            runs.Add((first, last));
            previous = last;
        }
        return new(runs);
    }

    /// <summary>The blocks of this set that are also in <paramref name="other"/>.</summary>
    public BlockRanges Intersect(BlockRanges other)
    {
        var result = new List<(long, long)>();
        int i = 0, j = 0;
        while (i < _runs.Count && j < other._runs.Count)
        {
            var first = Math.Max(_runs[i].First, other._runs[j].First);
            var last = Math.Min(_runs[i].Last, other._runs[j].Last);
            if (first <= last) result.Add((first, last));
            if (_runs[i].Last < other._runs[j].Last) i++; else j++;
        }
        return new(result);
    }

    /// <summary>The blocks of this set that are not in <paramref name="other"/>.</summary>
    public BlockRanges Except(BlockRanges other)
    {
        var result = new List<(long, long)>();
        var j = 0;
        foreach (var (first0, last) in _runs)
        {
            var first = first0;
            while (j < other._runs.Count && other._runs[j].Last < first) j++;
            var k = j;
            while (first <= last && k < other._runs.Count && other._runs[k].First <= last)
            {
                if (other._runs[k].First > first) result.Add((first, other._runs[k].First - 1));
                first = Math.Max(first, other._runs[k].Last + 1);
                k++;
            }
            if (first <= last) result.Add((first, last));
        }
        return new(result);
    }

    /// <summary>Every block number, ascending.</summary>
    public IEnumerable<long> Blocks()
    {
        foreach (var (first, last) in _runs)
            for (var b = first; b <= last; b++) yield return b;
    }

    /// <summary>Whether <paramref name="block"/> is in the set.</summary>
    public bool Contains(long block)
    {
        int lo = 0, hi = _runs.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) / 2;
            if (block < _runs[mid].First) hi = mid - 1;
            else if (block > _runs[mid].Last) lo = mid + 1;
            else return true;
        }
        return false;
    }

    /// <summary>The record's text: "0-5,9,12-40".</summary>
    public override string ToString()
    {
        var s = new StringBuilder();
        foreach (var (first, last) in _runs)
        {
            if (s.Length > 0) s.Append(',');
            s.Append(first.ToString(CultureInfo.InvariantCulture));
            if (last != first) s.Append('-').Append(last.ToString(CultureInfo.InvariantCulture));
        }
        return s.ToString();
    }
}
