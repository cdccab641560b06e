
namespace CloudArchive.Cli;

/// <summary>Which programs this process was started under (Linux /proc), to behave as the caller needs.</summary>
internal static class ProcessAncestry
{
    /// <summary>
    /// True when <paramref name="program"/> is this process's parent or an ancestor a few levels up (restore_command
    /// runs under /bin/sh, under PostgreSQL's startup process or pg_rewind). False when /proc cannot tell.
    /// </summary>
    public static bool Includes(string program, int levels = 4)
    {
        try
        {
            var pid = Environment.ProcessId;
            for (var i = 0; i < levels; i++)
            {
                // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so read after the last ')'.
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                pid = int.Parse(fields[1], CultureInfo.InvariantCulture);
                if (pid <= 1) return false;
                if (File.ReadAllText($"/proc/{pid}/comm").Trim() == program) return true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
        {
            // No /proc (or a process gone meanwhile): behave as for any other caller.
        }
        return false;
    }
}
