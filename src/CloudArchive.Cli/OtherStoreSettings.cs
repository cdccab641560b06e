namespace CloudArchive.Cli;

/// <summary>A second store's settings, from its own config file.</summary>
/// <param name="Path">The config file.</param>
/// <param name="Get">A setting's value there; null when the file does not set it.</param>
/// <param name="Credential">An SDK credential (AWS_ACCESS_KEY_ID ...) there; null when the file does not set it.</param>
internal sealed record OtherStoreSettings(string Path, Func<Setting, string?> Get, Func<string, string?> Credential);
