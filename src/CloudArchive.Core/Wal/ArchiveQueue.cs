using System.Globalization;

using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Wal;

/// <summary>
/// Async push's bookkeeping. PostgreSQL marks each finished WAL file with <c>archive_status/NAME.ready</c>;
/// the background worker pushes those and leaves an outcome in the spool: <c>NAME.ok</c> (durably stored;
/// holds the identity of the file it read) or <c>NAME.error</c> (exit code and one-line reason). The
/// wal-push that PostgreSQL runs for NAME consumes the outcome, so a failure is reported once, in
/// PostgreSQL's log, and retried on PostgreSQL's next attempt.
/// </summary>
internal sealed class ArchiveQueue
{
    public ArchiveQueue(string pgWal, string spoolDir)
    {
        PgWal = pgWal;
        StatusDir = Path.Combine(pgWal, "archive_status");
        Dir = spoolDir;
    }

    public string PgWal { get; }
    public string StatusDir { get; }
    public string Dir { get; }
    public string LockPath => Path.Combine(Dir, "worker.lock");
    public string LogPath => Path.Combine(Dir, "worker.log");

    /// <summary>Creates the spool directory if needed (0700) or says in one line why it cannot.</summary>
    public void EnsureSpool() => Spool.SpoolLocation.Ensure(Path.GetDirectoryName(Dir)!, Path.GetFileName(Dir));

    public bool IsReady(WalFileName name) => File.Exists(Path.Combine(StatusDir, name.Name + ".ready"));

    /// <summary>The files PostgreSQL waits to have archived, in its own order: timeline history files first, then by name.</summary>
    public IReadOnlyList<WalFileName> Ready()
    {
        var names = new List<WalFileName>();
        try
        {
            foreach (var path in Directory.EnumerateFiles(StatusDir, "*.ready"))
                if (WalFileName.TryParse(Path.GetFileNameWithoutExtension(path), out var name)) names.Add(name);
        }
        catch (DirectoryNotFoundException)
        {
            return [];
        }
        names.Sort((a, b) => a.Kind == b.Kind || (a.Kind != WalFileKind.History && b.Kind != WalFileKind.History)
            ? string.CompareOrdinal(a.Name, b.Name)
            : a.Kind == WalFileKind.History ? -1 : 1);
        return names;
    }

    /// <summary>Bytes of WAL waiting in pg_wal to be archived (pushed ones not counted).</summary>
    public long WaitingBytes()
    {
        long total = 0;
        foreach (var name in Ready())
            if (!File.Exists(OkPath(name)))
                total += FileIdentity.Of(Path.Combine(PgWal, name.Name))?.Size ?? 0;
        return total;
    }

    public bool HasOutcome(WalFileName name) => File.Exists(OkPath(name)) || File.Exists(ErrorPath(name));

    public void MarkDone(WalFileName name, FileIdentity identity) => WriteAtomically(OkPath(name), identity.ToString());

    /// <summary>What marks a failure the worker saw as an outage of the store (see <see cref="StoreUnavailableException.Outage"/>).</summary>
    public const string OutageMark = "[outage] ";

    public void MarkFailed(WalFileName name, ExitCode code, string message) =>
        WriteAtomically(ErrorPath(name), string.Create(CultureInfo.InvariantCulture, $"{(int)code} {message.ReplaceLineEndings(" ")}"));

    /// <summary>
    /// True when the worker stored exactly the file now at <paramref name="path"/> (same size and time);
    /// the outcome is consumed. An outcome for another version of the file is discarded.
    /// </summary>
    public bool TakeDone(WalFileName name, string path)
    {
        return Take(OkPath(name)) is { } text && FileIdentity.Parse(text) is { } stored && stored == FileIdentity.Of(path);
    }

    /// <summary>The worker's failure for <paramref name="name"/>, consumed; null when there is none.</summary>
    public CloudArchiveException? TakeFailure(WalFileName name)
    {
        if (Take(ErrorPath(name))?.TrimEnd() is not { } text) return null;
        var space = text.IndexOf(' ');
        var code = space > 0 && int.TryParse(text.AsSpan(0, space), NumberStyles.None, CultureInfo.InvariantCulture, out var c) && Enum.IsDefined((ExitCode)c)
            ? (ExitCode)c
            : ExitCode.Internal;
        var message = space > 0 ? text[(space + 1)..] : text;
        // An outage travels as its own code: only an unreachable store may have its segments dropped (--max-queue-bytes).
        if (code == ExitCode.StoreUnavailable)
            return new StoreUnavailableException($"async push of {name.Name} failed: {message.Replace(OutageMark, "", StringComparison.Ordinal)}",
                transient: message.StartsWith(OutageMark, StringComparison.Ordinal));
        return new CloudArchiveException(code, $"async push of {name.Name} failed: {message}");
    }

    /// <summary>Removes outcomes of files PostgreSQL no longer waits for (archived by a foreground push, or gone).</summary>
    public void Prune()
    {
        foreach (var path in Directory.EnumerateFiles(Dir))
        {
            var file = Path.GetFileName(path);
            if (!file.EndsWith(".ok", StringComparison.Ordinal) && !file.EndsWith(".error", StringComparison.Ordinal)) continue;
            var name = file[..file.LastIndexOf('.')];
            if (!File.Exists(Path.Combine(StatusDir, name + ".ready"))) File.Delete(path);
        }
    }

    /// <summary>An outcome's text, consumed; null when there is none.</summary>
    private static string? Take(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var text = File.ReadAllText(path);
            File.Delete(path);
            return text;
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    private string OkPath(WalFileName name) => Path.Combine(Dir, name.Name + ".ok");
    private string ErrorPath(WalFileName name) => Path.Combine(Dir, name.Name + ".error");

    private void WriteAtomically(string path, string text)
    {
        var temp = Path.Combine(Dir, "." + Path.GetFileName(path) + ".tmp");
        File.WriteAllText(temp, text + "\n");
        File.Move(temp, path, overwrite: true);
    }
}
