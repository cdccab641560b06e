namespace CloudArchive.Core.Backup;

/// <summary>A timeline history file (NNNNNNNN.history): which timelines came before, and where each ended.</summary>
public static class TimelineHistory
{
    /// <summary>Parses NNNNNNNN.history: "parentTLI&lt;tab&gt;switchpoint&lt;tab&gt;reason" lines, oldest first.</summary>
    public static List<TimelineSwitch> Parse(string text)
    {
        var result = new List<TimelineSwitch>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var parts = line.Split('\t', ' ');
            if (parts.Length < 2 || !uint.TryParse(parts[0], out var tli) || !Wal.Lsn.TryParse(parts[1], out var lsn))
                throw new CloudArchiveException(ExitCode.Corrupt, $"timeline history line '{line}' does not parse");
            result.Add(new TimelineSwitch(tli, lsn));
        }
        return result;
    }
}
