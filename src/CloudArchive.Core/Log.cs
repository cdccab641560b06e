namespace CloudArchive.Core;

/// <summary>How much <see cref="Log"/> prints (--log-level): each level includes those after it.</summary>
public enum LogLevel
{
    /// <summary>Everything, including each retry.</summary>
    Debug,
    /// <summary>Progress of each step.</summary>
    Info,
    /// <summary>Warnings and errors (the default).</summary>
    Warn,
    /// <summary>Only the reason a command failed.</summary>
    Error,
    /// <summary>Nothing.</summary>
    Off,
}

/// <summary>
/// The single place that turns text into output on stderr: every line passes <see cref="Redact"/>, so a
/// secret registered with <see cref="AddSecret"/> can never be printed, whatever message carried it.
/// </summary>
public static class Log
{
    private static readonly List<string> Secrets = [];
    private static readonly Lock Gate = new();

    /// <summary>The least severe level printed.</summary>
    public static LogLevel Level { get; set; } = LogLevel.Warn;
    /// <summary>Where lines go: stderr, or a worker's log file.</summary>
    public static TextWriter Sink { get; set; } = Console.Error;

    /// <summary>Prefix lines with the UTC time (background workers, whose log is a file of their own).</summary>
    public static bool Timestamps { get; set; }

    /// <summary>Registers a secret (a key, token or password) so it is printed as *** from now on; shorter than 4 characters is ignored.</summary>
    public static void AddSecret(string? secret)
    {
        if (string.IsNullOrEmpty(secret) || secret.Length < 4) return;
        lock (Gate) if (!Secrets.Contains(secret)) Secrets.Add(secret);
    }

    /// <summary><paramref name="text"/> with every registered secret replaced by ***.</summary>
    public static string Redact(string text)
    {
        lock (Gate)
            foreach (var s in Secrets)
                text = text.Replace(s, "***", StringComparison.Ordinal);
        return text;
    }

    /// <summary>Detail for --log-level debug.</summary>
    public static void Debug(string message) => Write(LogLevel.Debug, message);
    /// <summary>Progress for --log-level info.</summary>
    public static void Info(string message) => Write(LogLevel.Info, message);
    /// <summary>Something the operator should know about that did not stop the command.</summary>
    public static void Warn(string message) => Write(LogLevel.Warn, message);

    /// <summary>Always printed (unless logging is off): the one-line reason a command failed.</summary>
    public static void Error(string message) => Write(LogLevel.Error, message);

    /// <summary>How an error line begins (another process's, read back from a log, is found by it).</summary>
    public const string ErrorPrefix = "cloudarchive: error: ";

    /// <summary>Printed whatever the level (unless off): a one-line notice the operator must see.</summary>
    public static void Notice(string message)
    {
        if (Level != LogLevel.Off) Emit("cloudarchive: " + message);
    }

    private static void Write(LogLevel level, string message)
    {
        if (level < Level || Level == LogLevel.Off) return;
        var prefix = level switch
        {
            LogLevel.Error => ErrorPrefix,
            LogLevel.Warn => "cloudarchive: warning: ",
            LogLevel.Debug => "cloudarchive: debug: ",
            _ => "cloudarchive: ",
        };
        Emit(prefix + message);
    }

    private static void Emit(string line)
    {
        line = Redact(line);
        if (Timestamps) line = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm:ss.fff 'UTC' ", System.Globalization.CultureInfo.InvariantCulture) + line;
        lock (Gate) Sink.WriteLine(line);
    }
}
