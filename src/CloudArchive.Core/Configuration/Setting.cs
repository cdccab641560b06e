using System.Globalization;

namespace CloudArchive.Core.Configuration;

/// <summary>How a setting's text is read.</summary>
public enum SettingKind
{
    /// <summary>Any text (a URL, a path, a name).</summary>
    Text,

    /// <summary>A whole number within <see cref="Setting.Min"/> and <see cref="Setting.Max"/>.</summary>
    Whole,

    /// <summary>true/false (on/off, yes/no, 1/0); the flag takes no value.</summary>
    Switch,

    /// <summary>A size in bytes: a whole number, optionally with K, M, G or T (powers of 1024).</summary>
    Size,
}

/// <summary>
/// One setting, declared once: its flag (none for secrets, which would show in <c>ps</c>), its environment
/// variable (also its config-file key), how it is read, its range, default and help. The CLI, the manual's settings
/// table and <c>.env.example</c> all follow <see cref="SettingsTable"/>.
/// </summary>
/// <param name="Variable">Environment variable and config-file key.</param>
/// <param name="Flag">Command-line flag; null for a secret.</param>
/// <param name="Kind">How the text is read.</param>
/// <param name="Help">What it does, one line.</param>
/// <param name="DefaultText">The default as a user reads it in help text and docs/reference.md.</param>
public sealed record Setting(string Variable, string? Flag, SettingKind Kind, string Help, string DefaultText)
{
    /// <summary>Smallest value of a <see cref="SettingKind.Whole"/> setting.</summary>
    public int Min { get; init; }

    /// <summary>Largest value of a <see cref="SettingKind.Whole"/> setting.</summary>
    public int Max { get; init; } = int.MaxValue;

    /// <summary>The value of a <see cref="SettingKind.Whole"/> setting left unset, when it is one number (<see cref="DefaultText"/> says it to people).</summary>
    public int? Default { get; init; }

    /// <summary>A key, token or password: never a flag, never printed, never passed to a child program.</summary>
    public bool Secret { get; init; }

    /// <summary>A file path, or paths separated by commas: passed on absolute (restore_command runs in the data directory).</summary>
    public bool IsPath { get; init; }

    /// <summary>The commands that take the flag; empty: every command (a store or logging setting).</summary>
    public IReadOnlyList<string> Commands { get; init; } = [];

    /// <summary>The flag's help text: what it does, its variable and its default.</summary>
    public string Description => $"{Help} ({Variable}; default {DefaultText})";

    /// <summary>A whole number within the setting's range, from <paramref name="source"/> (for messages); null when <paramref name="text"/> is null.</summary>
    public int? ParseWhole(string? text, string source)
    {
        if (text is null) return null;
        return int.TryParse(text.Trim(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value)
               && value >= Min && value <= Max
            ? value
            : throw new CloudArchiveException(ExitCode.Usage, $"{Variable} in {source} must be a whole number from {Min} to {Max}, not '{text}'");
    }

    /// <summary>
    /// A switch's text: true/on/yes/1 or false/off/no/0; null when unset; anything else a usage error naming the
    /// variable (a typo never quietly means "off").
    /// </summary>
    public bool? ParseSwitch(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "true" or "on" or "yes" or "1" => true,
        "false" or "off" or "no" or "0" => false,
        _ => throw new CloudArchiveException(ExitCode.Usage, $"{Variable} must be true or false, not '{text}'"),
    };

    /// <summary>
    /// A size's text: a whole number of bytes, optionally with K, M, G or T (KiB, MiB..., also Kubernetes' Ki, Mi...: powers
    /// of 1024); null when unset; anything else a usage error naming the variable.
    /// </summary>
    public long? ParseSize(string? text)
    {
        if (text is null) return null;
        var t = text.Trim();
        var unit = t.TrimStart("0123456789".ToCharArray());
        var digits = t[..^unit.Length];
        long multiplier = unit.TrimEnd('B', 'b').TrimEnd('i').ToUpperInvariant() switch
        {
            "" => 1,
            "K" => 1L << 10,
            "M" => 1L << 20,
            "G" => 1L << 30,
            "T" => 1L << 40,
            _ => 0,
        };
        if (multiplier == 0 || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            || value > long.MaxValue / multiplier)
            throw new CloudArchiveException(ExitCode.Usage, $"{Variable} must be a size such as 8589934592, 8192MiB or 8GiB, not '{text}'");
        return value * multiplier;
    }
}
