
namespace CloudArchive.Cli;

/// <summary>
/// The settings of one command line: every setting of <see cref="SettingsTable"/> is its flag, else its
/// variable, else its KEY=VALUE line in the config file (--config or CLOUDARCHIVE_CONFIG). The flags are
/// built from the table, once each, and shared by the commands that take them.
/// </summary>
internal sealed class Settings
{
    private static readonly Dictionary<Setting, Option> Flags = SettingsTable.All.Where(s => s.Flag is not null).ToDictionary(s => s, NewOption);

    private readonly ParseResult _parse;
    private readonly Dictionary<string, string> _file;

    private Settings(ParseResult parse, Dictionary<string, string> file)
    {
        _parse = parse;
        _file = file;
    }

    /// <summary>The config file in use, if any (restore passes it on to restore_command, wal-fetch to its worker).</summary>
    public string? ConfigPath { get; private init; }

    /// <summary>The flags every command takes (store and logging settings), for the root command.</summary>
    public static IEnumerable<Option> GlobalOptions => Flags.Where(f => f.Key.Commands.Count == 0).Select(f => f.Value);

    /// <summary>The flags of the settings that <paramref name="command"/> takes, besides the global ones.</summary>
    public static IEnumerable<Option> OptionsOf(string command) => Flags.Where(f => f.Key.Commands.Contains(command)).Select(f => f.Value);

    /// <summary>Adds to <paramref name="command"/> the flags of the settings it takes.</summary>
    public static void AddOptions(Command command)
    {
        foreach (var option in OptionsOf(command.Name)) command.Add(option);
    }

    /// <summary>The flag of a setting, as a string option (a switch's is <see cref="Option{Boolean}"/>).</summary>
    public static Option<string> Flag(Setting setting) => (Option<string>)Flags[setting];

    private static Option NewOption(Setting s)
    {
        Option option = s.Kind == SettingKind.Switch ? new Option<bool>(s.Flag!) : new Option<string>(s.Flag!);
        option.Description = s.Description;
        option.Recursive = s.Commands.Count == 0;
        return option;
    }

    /// <summary>
    /// --verbose or CLOUDARCHIVE_VERBOSE, known before the config file is read (which may fail). Lenient on purpose: it
    /// runs before the error handling; a bad value is reported by <see cref="GetBool"/> once the settings load.
    /// </summary>
    public static bool IsVerbose(ParseResult parse) =>
        parse.GetValue((Option<bool>)Flags[SettingsTable.Verbose])
        || Environment.GetEnvironmentVariable(SettingsTable.Verbose.Variable)?.Trim().ToLowerInvariant() is "true" or "on" or "yes" or "1";

    /// <summary>The cloud SDK's credentials a config file may hold beside the settings (the environment's names): they reach the SDK.</summary>
    private static readonly string[] SdkCredentials = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"];

    public static Settings Load(ParseResult parse)
    {
        RefuseMisspelledVariables();
        var path = ConfigFile(parse);
        var file = path is null ? [] : ReadFile(path);
        // The SDK reads its credentials from the environment: a config file's go there (the environment's own win), and
        // never further (the PostgreSQL programs CloudArchive starts get no AWS_* variable).
        foreach (var key in SdkCredentials)
            if (file.TryGetValue(key, out var value) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(key)))
            {
                if (key != "AWS_PROFILE") Log.AddSecret(value);
                Environment.SetEnvironmentVariable(key, value);
            }
        return new Settings(parse, file) { ConfigPath = path is null ? null : Path.GetFullPath(path) };
    }

    /// <summary>
    /// The config file: --config, else CLOUDARCHIVE_CONFIG, else <see cref="SettingsTable.DefaultConfigFile"/> when it
    /// exists. CLOUDARCHIVE_CONFIG set to nothing means no config file at all (not even the default).
    /// </summary>
    private static string? ConfigFile(ParseResult parse)
    {
        if (NonEmpty(parse.GetValue(Flag(SettingsTable.Config))) is { } flag) return flag;
        var variable = Environment.GetEnvironmentVariable(SettingsTable.Config.Variable);
        if (variable is not null) return NonEmpty(variable);
        return File.Exists(SettingsTable.DefaultConfigFile) ? SettingsTable.DefaultConfigFile : null;
    }

    /// <summary>
    /// A CLOUDARCHIVE_* variable a letter or two away from a setting is a typo that would quietly leave the setting unset
    /// (a misspelled key file variable: plaintext): refused, naming the one meant. Other CLOUDARCHIVE_* names are not ours to judge.
    /// </summary>
    private static void RefuseMisspelledVariables()
    {
        var known = SettingsTable.All.Select(s => s.Variable).ToList();
        foreach (var name in Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(k => k.StartsWith("CLOUDARCHIVE_", StringComparison.Ordinal)))
            if (SettingsTable.Renamed.FirstOrDefault(r => r.Variable == name) is { } renamed)
                throw new CloudArchiveException(ExitCode.Usage, $"{renamed.Refusal} (in the environment)");
            else if (!known.Contains(name) && Suggest.Nearest(name, known) is { } meant)
                throw new CloudArchiveException(ExitCode.Usage, $"unknown setting {name} in the environment (did you mean {meant}?)");
    }

    /// <summary>The value of a setting, by flag, variable or config key, in that order; null when none is set.</summary>
    public string? Get(Setting setting)
    {
        // An empty key setting (a secret that was not mounted, a variable left blank) must not quietly mean "no encryption".
        if (setting == SettingsTable.EncryptionKeyFile && Given(setting) is { } given && given.Split(',').All(string.IsNullOrWhiteSpace))
            throw new CloudArchiveException(ExitCode.Usage, $"{setting.Flag} ({setting.Variable}) is set but names no key file: encryption would be off; " +
                $"name the key files, or unset it for an archive without encryption");
        return GetValue(setting);
    }

    /// <summary>
    /// Every setting's effective value and where it came from (the flag, the environment, the config file, or the default),
    /// for `cloudarchive config`; a secret's value is never given, only that it is set.
    /// </summary>
    public IEnumerable<(Setting Setting, string Value, string Source)> Effective()
    {
        foreach (var setting in SettingsTable.All)
        {
            var fromFlag = setting.Flag is not null && (setting.Kind == SettingKind.Switch
                ? _parse.GetValue((Option<bool>)Flags[setting])
                : NonEmpty(_parse.GetValue(Flag(setting))) is not null);
            var value = GetValue(setting);
            var source = fromFlag ? $"flag {setting.Flag}"
                : NonEmpty(Environment.GetEnvironmentVariable(setting.Variable)) is not null ? "environment"
                : value is not null ? $"config file {ConfigPath}"
                : "default";
            yield return (setting, value is null ? setting.DefaultText : setting.Secret ? "(set, not shown)" : value, source);
        }
    }

    /// <summary>The first place that sets <paramref name="setting"/> at all, empty or not; null when none does.</summary>
    private string? Given(Setting setting) =>
        (setting.Flag is null || setting.Kind == SettingKind.Switch ? null : _parse.GetValue(Flag(setting)))
        ?? Environment.GetEnvironmentVariable(setting.Variable)
        ?? (_file.TryGetValue(setting.Variable, out var v) ? v : null);

    private string? GetValue(Setting setting) =>
        (setting.Flag is null ? null
            : setting.Kind == SettingKind.Switch ? (_parse.GetValue((Option<bool>)Flags[setting]) ? "true" : null)
            : NonEmpty(_parse.GetValue(Flag(setting))))
        ?? NonEmpty(Environment.GetEnvironmentVariable(setting.Variable))
        ?? (_file.TryGetValue(setting.Variable, out var v) ? NonEmpty(v) : null);

    /// <summary>The flags and values given on this command line for <paramref name="settings"/>: what a worker or restore_command is started with.</summary>
    public IEnumerable<string> GivenFlags(IEnumerable<Setting> settings)
    {
        foreach (var s in settings.Where(s => s.Flag is not null))
        {
            if (s.Kind == SettingKind.Switch)
            {
                if (_parse.GetValue((Option<bool>)Flags[s])) yield return s.Flag!;
            }
            else if (NonEmpty(_parse.GetValue(Flag(s))) is { } value)
            {
                yield return s.Flag!;
                yield return value;
            }
        }
    }

    public string RequireStore() => Get(SettingsTable.Store)
        ?? throw new CloudArchiveException(ExitCode.Usage, "no store configured: pass --store URL or set CLOUDARCHIVE_STORE (e.g. " +
            "file:///var/lib/cloudarchive)");

    /// <summary>A whole-number setting within its range; unset: <paramref name="fallback"/>, else the table's default.</summary>
    public int GetInt(Setting setting, int? fallback = null)
    {
        var text = Get(setting);
        if (text is null)
            return fallback ?? setting.Default ?? throw new InvalidOperationException($"{setting.Variable} has no numeric default");
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < setting.Min || value > setting.Max)
            throw new CloudArchiveException(ExitCode.Usage, $"{setting.Variable} must be a whole number from {setting.Min} to {setting.Max}, not '{text}'");
        return value;
    }

    /// <summary>A whole-number setting within its range; null when unset (a setting with no default, such as a retention).</summary>
    public int? GetOptionalInt(Setting setting) => Get(setting) is null ? null : GetInt(setting);

    /// <summary>A switch: the flag, else true/false (on/off, yes/no, 1/0) from the variable or config file.</summary>
    public bool GetBool(Setting setting)
    {
        if (setting.Flag is not null && _parse.GetValue((Option<bool>)Flags[setting])) return true;
        return setting.ParseSwitch(Get(setting)) ?? false;
    }

    /// <summary>A size in bytes: a whole number, optionally with K, M, G or T (KiB, MiB...: powers of 1024); 0 when unset.</summary>
    public long GetBytes(Setting setting) => setting.ParseSize(Get(setting)) ?? 0;

    public LogLevel GetLogLevel()
    {
        var text = Get(SettingsTable.LogLevel);
        if (text is null) return GetBool(SettingsTable.Verbose) ? LogLevel.Info : LogLevel.Warn;
        return Enum.TryParse<LogLevel>(text, ignoreCase: true, out var level) && Enum.IsDefined(level)
            ? level
            : throw new CloudArchiveException(ExitCode.Usage, $"log level must be debug, info, warn, error or off, not '{text}'");
    }

    /// <summary>
    /// Another store's settings (copy's destination): the lines of its own config file and nothing else, so that no setting or
    /// credential meant for the first store reaches it; its AWS_* keys go to its S3 client, never to the environment.
    /// </summary>
    public static OtherStoreSettings OtherStore(string path)
    {
        var file = ReadFile(path);
        foreach (var key in SdkCredentials.Where(k => k != "AWS_PROFILE"))
            if (file.TryGetValue(key, out var value)) Log.AddSecret(value);
        return new OtherStoreSettings(Path.GetFullPath(path), s => file.TryGetValue(s.Variable, out var v) ? NonEmpty(v) : null,
            name => file.TryGetValue(name, out var v) ? NonEmpty(v) : null);
    }

    /// <summary>The store a config file names (what check compares archive_command's --config with); null when it cannot be read here.</summary>
    public static string? StoreInConfigFile(string path)
    {
        try
        {
            return ReadFile(path).TryGetValue(SettingsTable.Store.Variable, out var store) ? NonEmpty(store) : null;
        }
        catch (CloudArchiveException)
        {
            return null; // not readable by this user, or not a config file: the WAL switch decides
        }
    }

    private static Dictionary<string, string> ReadFile(string path)
    {
        string[] lines;
        try
        {
            // Whoever can write the config file chooses the store that restore reads and the key it trusts.
            if ((File.GetUnixFileMode(path) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
                throw new CloudArchiveException(ExitCode.Usage, $"config file {path} is writable by its group or by others, who could point this " +
                    $"command at another store: chmod go-w {path}");
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
            var key = line[..eq].Trim();
            if (SettingsTable.Renamed.FirstOrDefault(r => r.Variable == key) is { } renamed)
                throw new CloudArchiveException(ExitCode.Usage, $"config file {path}, line {i + 1}: {renamed.Refusal}");
            // Every key is a setting (or the SDK's credentials): a misspelled one would quietly leave its setting unset.
            if (!SettingsTable.All.Any(s => s.Variable == key) && !SdkCredentials.Contains(key))
                throw new CloudArchiveException(ExitCode.Usage, $"config file {path}, line {i + 1}: unknown setting {key}" +
                    (Suggest.Nearest(key, SettingsTable.All.Select(s => s.Variable).Concat(SdkCredentials)) is { } meant ? $" (did you mean {meant}?)" : ""));
            values[key] = Value(line[(eq + 1)..].Trim(), path, i + 1);
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
