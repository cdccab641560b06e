using System.CommandLine;
using System.Globalization;
using CloudArchive.Core;

namespace CloudArchive.Cli;

/// <summary>
/// Every setting follows one rule: the flag, else the CLOUDARCHIVE_* variable, else the config file
/// (--config or CLOUDARCHIVE_CONFIG: KEY=VALUE lines using the variable names).
/// </summary>
public sealed class Settings
{
    public static readonly Option<string> Store = new("--store") { Description = "Store URL (CLOUDARCHIVE_STORE): file:///absolute/path", Recursive = true };
    public static readonly Option<string> Config = new("--config") { Description = "Config file of KEY=VALUE lines (CLOUDARCHIVE_CONFIG)", Recursive = true };
    public static readonly Option<string> LogLevelOption = new("--log-level") { Description = "debug, info, warn, error or off (CLOUDARCHIVE_LOG_LEVEL; default warn)", Recursive = true };
    public static readonly Option<string> RetryTimeout = new("--retry-timeout") { Description = "Seconds to retry an unreachable store before giving up (CLOUDARCHIVE_RETRY_TIMEOUT; default 60)", Recursive = true };
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Show stack traces of failures", Recursive = true };

    /// <summary>Store settings with a flag each (secrets have none: a flag shows in `ps`); variable and config key alike.</summary>
    public static readonly IReadOnlyDictionary<string, Option<string>> StoreFlags = new Dictionary<string, Option<string>>
    {
        ["CLOUDARCHIVE_S3_ENDPOINT"] = new("--s3-endpoint") { Description = "S3-compatible endpoint URL (CLOUDARCHIVE_S3_ENDPOINT)", Recursive = true },
        ["CLOUDARCHIVE_S3_REGION"] = new("--s3-region") { Description = "S3 region (CLOUDARCHIVE_S3_REGION)", Recursive = true },
        ["CLOUDARCHIVE_S3_FORCE_PATH_STYLE"] = new("--s3-force-path-style") { Description = "true|false: bucket in the path, not the host name (CLOUDARCHIVE_S3_FORCE_PATH_STYLE; default true with an endpoint)", Recursive = true },
        ["CLOUDARCHIVE_S3_CHECKSUM"] = new("--s3-checksum") { Description = "when-required|when-supported: SDK checksums (CLOUDARCHIVE_S3_CHECKSUM; default when-required)", Recursive = true },
        ["CLOUDARCHIVE_S3_STORAGE_CLASS"] = new("--s3-storage-class") { Description = "S3 storage class, e.g. STANDARD_IA (CLOUDARCHIVE_S3_STORAGE_CLASS)", Recursive = true },
        ["CLOUDARCHIVE_S3_SSE"] = new("--s3-sse") { Description = "AES256 or aws:kms server-side encryption (CLOUDARCHIVE_S3_SSE)", Recursive = true },
        ["CLOUDARCHIVE_S3_SSE_KMS_KEY_ID"] = new("--s3-sse-kms-key-id") { Description = "KMS key for aws:kms (CLOUDARCHIVE_S3_SSE_KMS_KEY_ID)", Recursive = true },
        ["CLOUDARCHIVE_AZURE_ACCOUNT_URL"] = new("--azure-account-url") { Description = "https://ACCOUNT.blob.core.windows.net (CLOUDARCHIVE_AZURE_ACCOUNT_URL)", Recursive = true },
    };

    private readonly ParseResult _parse;
    private readonly Dictionary<string, string> _file;

    private Settings(ParseResult parse, Dictionary<string, string> file)
    {
        _parse = parse;
        _file = file;
    }

    /// <summary>The config file in use, if any (restore passes it on to restore_command).</summary>
    public string? ConfigPath { get; private init; }

    public static Settings Load(ParseResult parse)
    {
        var path = parse.GetValue(Config) ?? NonEmpty(Environment.GetEnvironmentVariable("CLOUDARCHIVE_CONFIG"));
        return new Settings(parse, path is null ? [] : ReadFile(path)) { ConfigPath = path is null ? null : Path.GetFullPath(path) };
    }

    /// <summary>The value of a setting, by flag, variable or config key, in that order; null when none is set.</summary>
    public string? Get(Option<string>? flag, string variable) =>
        (flag is null ? null : NonEmpty(_parse.GetValue(flag)))
        ?? NonEmpty(Environment.GetEnvironmentVariable(variable))
        ?? (_file.TryGetValue(variable, out var v) ? NonEmpty(v) : null);

    /// <summary>A setting by its variable name, through its flag where it has one.</summary>
    public string? Lookup(string variable) => Get(StoreFlags.TryGetValue(variable, out var flag) ? flag : null, variable);

    public string RequireStore() => Get(Store, "CLOUDARCHIVE_STORE")
        ?? throw new CloudArchiveException(ExitCode.Usage, "no store configured: pass --store URL or set CLOUDARCHIVE_STORE (e.g. file:///var/lib/cloudarchive)");

    public int GetInt(Option<string>? flag, string variable, int fallback, int min, int max)
    {
        var text = Get(flag, variable);
        if (text is null) return fallback;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new CloudArchiveException(ExitCode.Usage, $"{variable} must be a whole number from {min} to {max}, not '{text}'");
        return value;
    }

    /// <summary>A switch: the flag, else true/false (on/off, yes/no, 1/0) from the variable or config file.</summary>
    public bool GetBool(Option<bool> flag, string variable)
    {
        if (_parse.GetValue(flag)) return true;
        var text = Get(null, variable);
        return text?.Trim().ToLowerInvariant() switch
        {
            null => false,
            "true" or "on" or "yes" or "1" => true,
            "false" or "off" or "no" or "0" => false,
            _ => throw new CloudArchiveException(ExitCode.Usage, $"{variable} must be true or false, not '{text}'"),
        };
    }

    /// <summary>A size in bytes: a whole number, optionally with K, M, G or T (KiB, MiB...: powers of 1024); 0 when unset.</summary>
    public long GetBytes(Option<string> flag, string variable)
    {
        var text = Get(flag, variable);
        if (text is null) return 0;
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
        if (multiplier == 0 || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value > long.MaxValue / multiplier)
            throw new CloudArchiveException(ExitCode.Usage, $"{variable} must be a size such as 8589934592, 8192MiB or 8GiB, not '{text}'");
        return value * multiplier;
    }

    public LogLevel GetLogLevel()
    {
        var text = Get(LogLevelOption, "CLOUDARCHIVE_LOG_LEVEL");
        if (text is null) return _parse.GetValue(Verbose) ? LogLevel.Info : LogLevel.Warn;
        return Enum.TryParse<LogLevel>(text, ignoreCase: true, out var level) && Enum.IsDefined(level)
            ? level
            : throw new CloudArchiveException(ExitCode.Usage, $"log level must be debug, info, warn, error or off, not '{text}'");
    }

    private static Dictionary<string, string> ReadFile(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CloudArchiveException(ExitCode.Usage, $"cannot read config file {path}: {e.Message}");
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith("export ", StringComparison.Ordinal)) line = line[7..].TrimStart();
            var eq = line.IndexOf('=');
            if (eq <= 0)
                throw new CloudArchiveException(ExitCode.Usage, $"config file {path}, line {i + 1}: expected KEY=VALUE");
            values[line[..eq].Trim()] = Value(line[(eq + 1)..].Trim(), path, i + 1);
        }
        return values;
    }

    /// <summary>
    /// A config value: quoted ('...' or "...") it is taken exactly, and only a comment may follow the closing quote;
    /// unquoted, a # after a space or tab starts a comment and the value ends before it.
    /// </summary>
    private static string Value(string raw, string path, int line)
    {
        if (raw.Length > 0 && raw[0] is '"' or '\'')
        {
            var close = raw.IndexOf(raw[0], 1);
            if (close < 0)
                throw new CloudArchiveException(ExitCode.Usage, $"config file {path}, line {line}: the value opens a quote it does not close");
            var rest = raw[(close + 1)..].TrimStart();
            if (rest.Length > 0 && rest[0] != '#')
                throw new CloudArchiveException(ExitCode.Usage, $"config file {path}, line {line}: text after the closing quote (only a # comment may follow)");
            return raw[1..close];
        }
        for (var i = 1; i < raw.Length; i++)
            if (raw[i] == '#' && raw[i - 1] is ' ' or '\t') return raw[..i].TrimEnd();
        return raw;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
