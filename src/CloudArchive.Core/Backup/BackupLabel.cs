using System.Globalization;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Backup;

/// <summary>
/// What backup-push reads from the text PostgreSQL writes about a backup: backup_label (from pg_backup_stop, or in
/// pg_basebackup's tar), the backup history file (the same "FIELD: value" lines, with the stop too) and pg_basebackup's
/// -v messages.
/// </summary>
public static class BackupLabel
{
    /// <summary>"START WAL LOCATION: 0/2000028 (file ...)": where the backup began.</summary>
    public static Lsn StartLsn(string label) => Location(label, "START WAL LOCATION: ");

    /// <summary>"STOP WAL LOCATION: ...", which only a backup history file has: where the backup ended.</summary>
    public static Lsn StopLsn(string historyFile) => Location(historyFile, "STOP WAL LOCATION: ");

    /// <summary>"START TIMELINE: 1": the timeline the backup began on.</summary>
    public static uint StartTimeline(string label) =>
        uint.TryParse(Field(label, "START TIMELINE: "), NumberStyles.None, CultureInfo.InvariantCulture, out var timeline) && timeline > 0
            ? timeline
            : throw new CloudArchiveException(ExitCode.Internal, $"backup_label's START TIMELINE is not a timeline: '{Field(label, "START TIMELINE: ")}'");

    /// <summary>The value of the first line starting with <paramref name="prefix"/>, trimmed.</summary>
    public static string Field(string label, string prefix) =>
        label.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal))?[prefix.Length..].Trim()
            ?? throw new CloudArchiveException(ExitCode.Internal, $"backup_label has no '{prefix.Trim()}' line");

    /// <summary>pg_basebackup -v's "write-ahead log end point: X/X" (a standby writes no backup history file to read it from); null when absent.</summary>
    public static Lsn? EndPointOf(string messages)
    {
        const string marker = "write-ahead log end point: ";
        var at = messages.LastIndexOf(marker, StringComparison.Ordinal);
        if (at < 0) return null;
        var text = new string(messages[(at + marker.Length)..].TakeWhile(c => c == '/' || char.IsAsciiHexDigit(c)).ToArray());
        return Lsn.TryParse(text, out var lsn) ? lsn : null;
    }

    private static Lsn Location(string label, string prefix)
    {
        var text = Field(label, prefix).Split(' ')[0];
        return Lsn.TryParse(text, out var lsn)
            ? lsn
            : throw new CloudArchiveException(ExitCode.Internal, $"backup_label's {prefix.Trim().TrimEnd(':')} is not an LSN: '{text}'");
    }
}
