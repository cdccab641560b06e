
namespace CloudArchive.Cli;

/// <summary>The options several commands take with one meaning, declared once (the settings are SettingsTable's).</summary>
internal static class CommonOptions
{
    /// <summary>--json: the command's output as JSON on stdout; its fields are listed in docs/reference.md and docs/monitoring.md.</summary>
    public static readonly Option<bool> Json = new("--json") { Description = "Machine-readable output (stable field names: docs/reference.md, docs/monitoring.md)" };
}
