using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Tests;

/// <summary>A recovery target time is one moment, read in the zone PostgreSQL reads it in, whatever the zone of the restoring host.</summary>
public sealed class TargetTimeTests
{
    [Theory]
    [InlineData("2026-12-06 09:26:08+00", null, "2026-12-06T09:26:08+00:00")]
    [InlineData("2026-12-06 09:26:08.123456+01:00", null, "2026-12-06T08:26:08.123456+00:00")]
    [InlineData("2026-12-06T09:26:08Z", null, "2026-12-06T09:26:08+00:00")]
    [InlineData("2026-12-06 09:26:08 -0530", null, "2026-12-06T14:56:08+00:00")]
    [InlineData("2026-12-06 09:26:08 UTC", null, "2026-12-06T09:26:08+00:00")]
    [InlineData("2026-12-06 09:26:08 Europe/Berlin", null, "2026-12-06T08:26:08+00:00")]
    [InlineData("2026-07-06 09:26:08 Europe/Berlin", null, "2026-07-06T07:26:08+00:00")]
    // No zone: the cluster's timezone, never the restoring host's (TZ of this process plays no part).
    [InlineData("2026-12-06 09:26:08", "America/New_York", "2026-12-06T14:26:08+00:00")]
    [InlineData("2026-12-06 09:26", "Asia/Tokyo", "2026-12-06T00:26:00+00:00")]
    [InlineData("2026-12-06", "Etc/UTC", "2026-12-06T00:00:00+00:00")]
    public void IsOneMoment(string text, string? clusterZone, string utc)
    {
        var resolved = TargetTime.Resolve(text, clusterZone);

        Assert.Equal(DateTimeOffset.Parse(utc, System.Globalization.CultureInfo.InvariantCulture), resolved.At);
        // Written for PostgreSQL with an explicit offset, so the server reads the same moment.
        Assert.EndsWith("+00:00", resolved.ForPostgres);
        Assert.Equal(resolved.At, DateTimeOffset.Parse(resolved.ForPostgres, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains(clusterZone ?? "given", resolved.Zone);
    }

    [Theory]
    // Without a zone and with no timezone recorded: refused rather than guessed.
    [InlineData("2026-12-06 09:26:08", null, "names no zone")]
    // Abbreviations: PostgreSQL gives them a fixed offset, a zone database its daylight saving time.
    [InlineData("2026-07-06 09:26:08 CET", null, "abbreviation")]
    [InlineData("2026-12-06 09:26:08 Mars/Olympus", null, "no time zone")]
    // A moment that never happened, and one that happened twice, in the cluster's zone.
    [InlineData("2026-03-29 02:30:00", "Europe/Berlin", "does not exist")]
    [InlineData("2026-10-25 02:30:00", "Europe/Berlin", "happened twice")]
    [InlineData("yesterday", "Etc/UTC", "not a time")]
    // A zone planted in a backup record is a name, never a path.
    [InlineData("2026-12-06 09:26:08", "../../../etc/passwd", "no time zone")]
    public void AmbiguousOrUnknownIsAUsageError(string text, string? clusterZone, string why)
    {
        var e = Assert.Throws<CloudArchiveException>(() => TargetTime.Resolve(text, clusterZone));
        Assert.Equal(ExitCode.Usage, e.ExitCode);
        Assert.Contains(why, e.Message);
    }
}
