using System.Globalization;
using System.Text.RegularExpressions;

namespace CloudArchive.Core.Backup;

/// <summary>A recovery target time read as one moment: the instant, and how its zone was decided (for the operator).</summary>
/// <param name="At">The moment.</param>
/// <param name="Zone">The zone the text was read in, and why: "+01:00 (given)", "Europe/Berlin (the cluster's timezone)".</param>
public sealed record ResolvedTime(DateTimeOffset At, string Zone)
{
    /// <summary>The value written as recovery_target_time: UTC with an explicit offset, so PostgreSQL reads the same moment.</summary>
    public string ForPostgres => At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00:00";
}

/// <summary>
/// recovery_target_time as PostgreSQL reads it: a date and time, then an offset (+01, +0100, +01:00, Z) or a zone name
/// (UTC, Europe/Berlin), or nothing, which PostgreSQL reads in the server's timezone setting. Read here in that same
/// zone (the one the backup recorded), never in the zone of the shell that runs the restore: the backup chosen and the
/// point replayed to are then one moment.
/// </summary>
public static partial class TargetTime
{
    [GeneratedRegex(@"^(?<date>\d{4}-\d{2}-\d{2})(?:[ T](?<time>\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?))?\s*(?<zone>Z|[+-]\d{1,2}(?::?\d{2})?|[A-Za-z][A-Za-z0-9_+\-/]*)?$")]
    private static partial Regex Form();

    /// <summary>
    /// Reads <paramref name="text"/>; <paramref name="clusterZone"/> is the cluster's timezone setting (from the backup's
    /// record), used when the text names no zone; null when unknown, and then such a text is refused.
    /// </summary>
    public static ResolvedTime Resolve(string text, string? clusterZone)
    {
        var m = Form().Match(text.Trim());
        if (!m.Success)
            throw Usage($"--target-time '{text}' is not a time PostgreSQL reads (e.g. '2026-11-24 10:42:00+00', '2026-11-24 10:42:00 Europe/Berlin')");
        var local = DateTime.ParseExact(m.Groups["date"].Value + " " + (m.Groups["time"].Success ? m.Groups["time"].Value : "00:00"),
            ["yyyy-MM-dd H:mm", "yyyy-MM-dd H:mm:ss", "yyyy-MM-dd H:mm:ss.FFFFFF"], CultureInfo.InvariantCulture, DateTimeStyles.None);
        var zone = m.Groups["zone"].Success ? m.Groups["zone"].Value : null;
        if (zone is null)
        {
            if (clusterZone is null)
                throw Usage($"--target-time '{text}' names no zone, and the backups do not record the cluster's timezone (they were taken before " +
                    $"CloudArchive recorded it): give the time with an offset or zone, e.g. '{text.Trim()}+00' or '{text.Trim()} Europe/Berlin'");
            return InZone(text, local, clusterZone, $"{clusterZone} (the cluster's timezone, as PostgreSQL reads a time without a zone)");
        }
        if (zone == "Z") return new ResolvedTime(new DateTimeOffset(local, TimeSpan.Zero), "UTC (given)");
        if (zone[0] is '+' or '-')
        {
            var digits = zone[1..].Replace(":", "", StringComparison.Ordinal);
            var hours = int.Parse(digits.Length <= 2 ? digits : digits[..^2], CultureInfo.InvariantCulture);
            var minutes = digits.Length <= 2 ? 0 : int.Parse(digits[^2..], CultureInfo.InvariantCulture);
            if (hours > 15 || minutes > 59) throw Usage($"--target-time '{text}': {zone} is no UTC offset");
            var offset = new TimeSpan(hours, minutes, 0) * (zone[0] == '-' ? -1 : 1);
            return new ResolvedTime(new DateTimeOffset(local, offset), $"{FormatOffset(offset)} (given)");
        }
        // PostgreSQL reads a short name (CET, EST, PST) as an abbreviation with a fixed offset, a region name with its daylight
        // saving time: only the region names mean the same here and there.
        if (zone is "UTC" or "GMT") return new ResolvedTime(new DateTimeOffset(local, TimeSpan.Zero), $"{zone} (given)");
        if (!zone.Contains('/'))
            throw Usage($"--target-time '{text}': '{zone}' may be an abbreviation PostgreSQL reads with a fixed offset; give an offset (+01) or a " +
                $"region name (Europe/Berlin)");
        return InZone(text, local, zone, $"{zone} (given)");
    }

    private static ResolvedTime InZone(string text, DateTime local, string zoneName, string why)
    {
        // The cluster's zone comes from a backup record, which others may have written: a name, never a path.
        if (zoneName.Contains("..", StringComparison.Ordinal) || zoneName.StartsWith('/') || !zoneName.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '+' or '-' or '/')
            || !TimeZoneInfo.TryFindSystemTimeZoneById(zoneName, out var zone))
            throw Usage($"--target-time '{text}': no time zone '{zoneName}' on this host (give an offset such as +01, or a zone name such as " +
                $"Europe/Berlin)");
        if (zone.IsInvalidTime(local))
            throw Usage($"--target-time '{text}': {local:yyyy-MM-dd HH:mm:ss} does not exist in {zoneName} (clocks moved forward); give an offset");
        if (zone.IsAmbiguousTime(local))
            throw Usage($"--target-time '{text}': {local:yyyy-MM-dd HH:mm:ss} happened twice in {zoneName} (clocks moved back); give an offset");
        var offset = zone.GetUtcOffset(local);
        return new ResolvedTime(new DateTimeOffset(local, offset), $"{why}, {FormatOffset(offset)}");
    }

    private static string FormatOffset(TimeSpan offset) =>
        (offset < TimeSpan.Zero ? "-" : "+") + offset.Duration().ToString(@"hh\:mm", CultureInfo.InvariantCulture);

    private static CloudArchiveException Usage(string message) => new(ExitCode.Usage, message);
}
