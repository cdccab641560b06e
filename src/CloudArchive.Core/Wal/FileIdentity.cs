using System.Globalization;

namespace CloudArchive.Core.Wal;

/// <summary>What identifies one version of a file cheaply: its size and modification time.</summary>
internal sealed record FileIdentity(long Size, long ModifiedTicks)
{
    public static FileIdentity? Of(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? new FileIdentity(info.Length, info.LastWriteTimeUtc.Ticks) : null;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Size} {ModifiedTicks}");

    public static FileIdentity? Parse(string text)
    {
        var parts = text.Trim().Split(' ');
        return parts.Length == 2
               && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var size)
               && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
            ? new FileIdentity(size, ticks)
            : null;
    }
}
