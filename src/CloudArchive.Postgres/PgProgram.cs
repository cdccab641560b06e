using System.Diagnostics;
using System.Text;
using CloudArchive.Core;

namespace CloudArchive.Postgres;

/// <summary>
/// A PostgreSQL client program (pg_dump, pg_dumpall, pg_restore, psql) run as a child process: libpq reads
/// its own settings (--dbname, PGHOST, PGPASSWORD, ~/.pgpass...) exactly as it would from a shell. stdout
/// and stdin are the caller's streams; stderr is read concurrently, copied to an optional log, and kept
/// (bounded) so a failure can be reported as one line in the program's own words.
/// </summary>
internal sealed class PgProgram : IDisposable
{
    private const int KeptLines = 200;
    private readonly Process _process;
    private readonly Task _stderr;
    private readonly List<string> _important = [];
    private readonly List<string> _warnings = [];
    private readonly Queue<string> _tail = new();
    private bool _killed;

    /// <summary>The program's file name, as it prefixes its own messages ("pg_dump: error: ...").</summary>
    public string Name { get; }

    private PgProgram(string name, Process process, TextWriter? log)
    {
        Name = name;
        _process = process;
        _stderr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                if (log is not null) lock (log) log.WriteLine(Log.Redact(line));
                lock (_important)
                {
                    if (IsImportant(line) && _important.Count < KeptLines) _important.Add(line);
                    else if (line.StartsWith(Name + ": warning: ", StringComparison.Ordinal) && _warnings.Count < 20)
                        _warnings.Add(Name + ": " + line[(Name.Length + 11)..]);
                    _tail.Enqueue(line);
                    if (_tail.Count > 20) _tail.Dequeue();
                }
            }
        });
    }

    /// <summary>What the program writes: the dump, or psql's query output.</summary>
    public Stream StandardOutput => _process.StandardOutput.BaseStream;

    /// <summary>What the program reads (psql's script, pg_restore's archive); open only when started with writeStdin.</summary>
    public Stream StandardInput => _process.StandardInput.BaseStream;

    /// <summary>The child has ended; its stderr may still be being read until <see cref="WaitAsync"/> returns.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The child's exit code; only once <see cref="HasExited"/>.</summary>
    public int ExitStatus => _process.ExitCode;

    /// <summary>
    /// The program to run for <paramref name="need"/>: the one in <paramref name="binDir"/> (--pg-bin) if given, else the
    /// newest new enough of those on PATH, in /usr/lib/postgresql/*/bin and in pg_config --bindir, each asked for its
    /// --version (<see cref="ClientNeed.Choose"/>). Debian's pg_wrapper links are passed over: the version they report
    /// need not be the one they run.
    /// </summary>
    public static async Task<ClientProgram> FindAsync(ClientNeed need, string? binDir, CancellationToken ct)
    {
        if (binDir is not null)
            return need.Choose(binDir, await ProbeAsync(Path.Combine(binDir, need.Program), ct).ConfigureAwait(false), []);
        var found = new List<ClientProgram>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in CandidateDirectories())
        {
            var path = Path.Combine(dir, need.Program);
            if (!File.Exists(path) || !seen.Add(RealPath(path)) || IsPgWrapper(path)) continue;
            if (await ProbeAsync(path, ct).ConfigureAwait(false) is { } p) found.Add(p);
        }
        return need.Choose(null, null, found);
    }

    private static IEnumerable<string> CandidateDirectories()
    {
        foreach (var p in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            yield return p;
        if (Directory.Exists("/usr/lib/postgresql"))
            foreach (var d in Directory.GetDirectories("/usr/lib/postgresql").Order(StringComparer.Ordinal))
                yield return Path.Combine(d, "bin");
        if (PgConfigBinDir() is { } bindir) yield return bindir;
    }

    /// <summary>The program at <paramref name="path"/> and its version; null when it is not there or does not answer --version.</summary>
    private static async Task<ClientProgram?> ProbeAsync(string path, CancellationToken ct)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var version = LibpqSettings.ProgramVersion(await RunAsync(path, ["--version"], ct).ConfigureAwait(false));
            return PostgresVersion.ProgramMajor(version) is { } major ? new ClientProgram(path, version, major) : null;
        }
        catch (CloudArchiveException)
        {
            return null; // not executable, or fails: not a program we can use
        }
    }

    private static string RealPath(string path)
    {
        try
        {
            return new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
        }
        catch (IOException)
        {
            return Path.GetFullPath(path);
        }
    }

    private static bool IsPgWrapper(string path) => Path.GetFileName(RealPath(path)) == "pg_wrapper";

    private static string? PgConfigBinDir()
    {
        try
        {
            var psi = StartInfo("pg_config");
            psi.ArgumentList.Add("--bindir");
            psi.RedirectStandardInput = false;
            using var p = Process.Start(psi);
            if (p is null) return null;
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 && output.Length > 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no pg_config on PATH
        }
    }

    /// <summary>
    /// The one way this program starts a PostgreSQL program (pg_dump, pg_basebackup, psql, pg_config...): its
    /// output redirected, and this process's environment without the store's secrets (AWS_*, AZURE_*,
    /// CLOUDARCHIVE_*), which no PostgreSQL program needs and none may see. libpq's own variables (PG*) stay.
    /// </summary>
    public static ProcessStartInfo StartInfo(string path)
    {
        var psi = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var key in psi.Environment.Keys.Where(IsStoreSecret).ToList()) psi.Environment.Remove(key);
        return psi;
    }

    private static bool IsStoreSecret(string variable) =>
        variable.StartsWith("AWS_", StringComparison.Ordinal) || variable.StartsWith("AZURE_", StringComparison.Ordinal)
        || variable.StartsWith("CLOUDARCHIVE_", StringComparison.Ordinal);

    /// <summary>
    /// Starts <paramref name="path"/> (see <see cref="StartInfo"/>) with <paramref name="env"/> added; <paramref name="withoutLibpqEnvironment"/>:
    /// without this process's PG* variables too (a program that must connect only where its arguments say, with nothing of the user's).
    /// </summary>
    public static PgProgram Start(string path, IEnumerable<string> args, bool writeStdin, IReadOnlyDictionary<string, string>? env = null,
        TextWriter? log = null, bool withoutLibpqEnvironment = false)
    {
        var psi = StartInfo(path);
        if (withoutLibpqEnvironment)
            foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("PG", StringComparison.Ordinal)).ToList()) psi.Environment.Remove(key);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var name = Path.GetFileName(path);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new CloudArchiveException(ExitCode.Internal, $"cannot start {path}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CloudArchiveException(ExitCode.Usage, $"cannot run {path}: {e.Message}", e);
        }
        if (!writeStdin) process.StandardInput.Close();
        return new PgProgram(name, process, log);
    }

    /// <summary>Runs a program to completion and returns its stdout; a non-zero exit raises its one-line reason.</summary>
    public static async Task<string> RunAsync(string path, IEnumerable<string> args, CancellationToken ct,
        IReadOnlyDictionary<string, string>? env = null, TextWriter? log = null)
    {
        using var p = Start(path, args, writeStdin: false, env, log);
        var output = await new StreamReader(p.StandardOutput, Encoding.UTF8).ReadToEndAsync(ct).ConfigureAwait(false);
        await p.WaitAsync(ct).ConfigureAwait(false);
        if (p.ExitStatus != 0) throw p.Failure();
        return output;
    }

    /// <summary>Waits for the program to exit and for its stderr to be read to the end.</summary>
    public async Task WaitAsync(CancellationToken ct)
    {
        try
        {
            await _process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw;
        }
        await _stderr.ConfigureAwait(false);
    }

    /// <summary>Stops the program and its children (a parallel pg_restore's workers); its exit is then ours, not a failure of its own.</summary>
    public void Kill()
    {
        if (_process.HasExited) return;
        _killed = true;
        try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { /* exited meanwhile */ }
    }

    /// <summary>The program was stopped by <see cref="Kill"/>, so its exit status says nothing about it.</summary>
    public bool KilledByUs => _killed;

    /// <summary>The program's own warnings ("pg_dump: warning: ..."), worth passing on even when it succeeds.</summary>
    public IReadOnlyList<string> Warnings
    {
        get { lock (_important) return [.. _warnings]; }
    }

    /// <summary>The last lines of its stderr (up to 20), as written; complete once <see cref="WaitAsync"/> has returned.</summary>
    public string LastMessages
    {
        get { lock (_important) return string.Join('\n', _tail); }
    }

    /// <summary>"pg_dump failed: REASON" as one line, in the program's words (its error and detail lines).</summary>
    public CloudArchiveException Failure(string? suffix = null) =>
        new(Core.ExitCode.PostgresFailed, $"{Name} failed: {Reason()}{suffix}");

    /// <summary>Its error and detail lines (else the last lines of stderr) joined into one redacted line of at most 600 characters.</summary>
    public string Reason()
    {
        List<string> lines;
        lock (_important) lines = _important.Count > 0 ? [.. _important] : [.. _tail];
        var parts = new List<string>();
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0) continue;
            var text = StripPrefix(line, out var isDetail);
            if (isDetail && (text.StartsWith("Command was:", StringComparison.Ordinal) || parts.Count == 0)) continue;
            parts.Add(isDetail ? $"({text})" : text);
            if (parts.Count >= 4) break;
        }
        var reason = string.Join(' ', parts);
        if (reason.Length == 0)
            reason = _process.HasExited ? $"exit code {_process.ExitCode} with no message" : "no message";
        reason = string.Join(' ', reason.Split((char[])[' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries));
        return Log.Redact(reason.Length > 600 ? reason[..600] + "..." : reason);
    }

    // "pg_dump: error: ...", "pg_restore: detail: ...", "psql:<stdin>:12: ERROR:  ...", "DETAIL:  ..."
    private bool IsImportant(string line) =>
        line.StartsWith(Name + ": error:", StringComparison.Ordinal) || line.StartsWith(Name + ": detail:", StringComparison.Ordinal)
        || line.StartsWith(Name + ": fatal:", StringComparison.Ordinal)
        || line.Contains(": ERROR:", StringComparison.Ordinal) || line.Contains(": FATAL:", StringComparison.Ordinal)
        || line.StartsWith("ERROR:", StringComparison.Ordinal) || line.StartsWith("FATAL:", StringComparison.Ordinal)
        || line.StartsWith("DETAIL:", StringComparison.Ordinal);

    private string StripPrefix(string line, out bool isDetail)
    {
        isDetail = false;
        foreach (var (prefix, detail) in new[] { (": error: ", false), (": fatal: ", false), (": detail: ", true) })
            if (line.StartsWith(Name + prefix, StringComparison.Ordinal)) { isDetail = detail; return line[(Name.Length + prefix.Length)..]; }
        if (line.StartsWith("DETAIL:", StringComparison.Ordinal)) { isDetail = true; return line.Trim(); }
        if (line.StartsWith(Name + ":", StringComparison.Ordinal))
        {
            // psql:<stdin>:12: ERROR:  ... -> "ERROR: ... (line 12)"
            var error = line.IndexOf(": ERROR:", StringComparison.Ordinal) is var i and >= 0 ? i : line.IndexOf(": FATAL:", StringComparison.Ordinal);
            if (error >= 0)
            {
                var where = line[(Name.Length + 1)..error];
                var lineNo = where.LastIndexOf(':') is var c and >= 0 ? where[(c + 1)..] : "";
                return line[(error + 2)..] + (lineNo.Length > 0 && lineNo.All(char.IsAsciiDigit) ? $" (script line {lineNo})" : "");
            }
        }
        return line;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
