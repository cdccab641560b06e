using CloudArchive.Core.Storage;

namespace CloudArchive.Cli;

/// <summary>The second store archiving writes to (--store-2).</summary>
/// <param name="Url">Its URL.</param>
/// <param name="Mode">How much archiving waits for it.</param>
/// <param name="Get">Its settings (--store-2-config's lines, else the command line's).</param>
/// <param name="Credential">Its own SDK credentials (--store-2-config's AWS_* keys); null: the SDK's chain.</param>
/// <param name="ConfigFile">--store-2-config, when given: where its own retention (CLOUDARCHIVE_RETAIN_*) is read.</param>
internal sealed record SecondStoreSettings(string Url, SecondStoreMode Mode, Func<Setting, string?> Get, Func<string, string?>? Credential, string? ConfigFile);
