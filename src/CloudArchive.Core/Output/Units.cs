using System.Globalization;

namespace CloudArchive.Core.Output;

/// <summary>Sizes and durations as the text output writes them, one way everywhere.</summary>
public static class Units
{
    /// <summary>Bytes in MiB with one decimal: "12.3 MiB".</summary>
    public static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.0} MiB");

    /// <summary>Bytes in KiB below one MiB, else in MiB: for what is often small (a dump of an empty database).</summary>
    public static string Size(long bytes) => bytes < 1048576 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KiB") : Mib(bytes);

    /// <summary>A duration as people say it: 42 s, 12 min, 5.2 h, 3.1 d.</summary>
    public static string Age(double seconds) => seconds switch
    {
        < 120 => string.Create(CultureInfo.InvariantCulture, $"{seconds:0} s"),
        < 7200 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 60:0} min"),
        < 172800 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600:0.0} h"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{seconds / 86400:0.0} d"),
    };

    /// <summary>How long ago <paramref name="at"/> was, as <see cref="Age(double)"/> says it.</summary>
    public static string Since(DateTimeOffset at) => Age(Math.Max(0, (DateTimeOffset.UtcNow - at).TotalSeconds));
}
