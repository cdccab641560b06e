using System.Globalization;
using CloudArchive.Core.Configuration;

namespace CloudArchive.Core.Storage;

/// <summary>How strictly a lock holds: S3 Object Lock's modes, Azure's immutability policy modes.</summary>
public enum LockMode
{
    /// <summary>S3 GOVERNANCE (a holder of s3:BypassGovernanceRetention may lift it); Azure Unlocked (the policy can be shortened or removed).</summary>
    Governance,

    /// <summary>S3 COMPLIANCE, Azure Locked: nobody, not the account's owner, deletes the object before its date.</summary>
    Compliance,
}

/// <summary>
/// The retention lock every write of a store carries (--lock-days, --lock-mode): the object cannot be deleted or replaced
/// before <see cref="Until"/>. A store setting: a second store's config file carries its own.
/// </summary>
/// <param name="Days">Days from the write the object stays locked.</param>
/// <param name="Mode">Governance or compliance.</param>
public sealed record ObjectLock(int Days, LockMode Mode)
{
    /// <summary>The longest lock taken: 100 years, as the retention settings.</summary>
    public const int MaxDays = 36500;

    /// <summary>The retain-until date of an object written at <paramref name="now"/>.</summary>
    public DateTimeOffset Until(DateTimeOffset now) => now.AddDays(Days);

    /// <summary>The mode as the settings spell it.</summary>
    public string ModeName => Mode == LockMode.Compliance ? "compliance" : "governance";

    /// <summary>For messages: "governance lock of 30 days".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{ModeName} lock of {Days} days");

    /// <summary>The lock the settings ask for; null when --lock-days is unset or 0. A bad value is a usage error, one line.</summary>
    public static ObjectLock? From(Func<Setting, string?> setting)
    {
        var daysText = setting(SettingsTable.LockDays);
        var modeText = setting(SettingsTable.LockMode);
        var days = 0;
        if (daysText is not null && (!int.TryParse(daysText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out days) || days > MaxDays))
            throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.LockDays.Variable} ({SettingsTable.LockDays.Flag}) must be a whole number of days " +
                $"from 0 to {MaxDays}, not '{daysText}'");
        var mode = modeText?.Trim().ToLowerInvariant() switch
        {
            null or "governance" => LockMode.Governance,
            "compliance" => LockMode.Compliance,
            _ => throw new CloudArchiveException(ExitCode.Usage, $"{SettingsTable.LockMode.Variable} ({SettingsTable.LockMode.Flag}) must be governance or " +
                $"compliance, not '{modeText}'"),
        };
        return days == 0 ? null : new ObjectLock(days, mode);
    }
}

/// <summary>
/// A delete the store refused because the object is locked (S3 Object Lock, Azure immutability): expire keeps it and says
/// until when, an ordinary outcome, not a failure of the run.
/// </summary>
/// <param name="key">The object's key.</param>
/// <param name="until">Its retain-until date, when the store told it.</param>
public sealed class ObjectLockedException(string message, string key, DateTimeOffset? until, Exception? inner = null)
    : CloudArchiveException(ExitCode.StoreUnavailable, message, inner)
{
    /// <summary>The object's key.</summary>
    public string Key { get; } = key;

    /// <summary>Its retain-until date; null when the store did not say.</summary>
    public DateTimeOffset? Until { get; } = until;
}
