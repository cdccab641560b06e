using CloudArchive.Core;
using CloudArchive.Core.Dump;
using CloudArchive.Core.Pipeline;
using CloudArchive.Native;

namespace CloudArchive.Postgres;

/// <summary>
/// The SQL of a custom or directory dump, checked before anything is restored for what <see cref="PsqlScript"/> refuses in a
/// plain one: a COPY ... PROGRAM inside a statement. <c>pg_restore --file=-</c> (no connection) renders the archive as the
/// script it would run: every entry of its table of contents (DO blocks, function bodies, views, defaults, triggers), each
/// table's COPY statement, and the data blocks, which a forged archive can fill with SQL instead of rows. It reads the same
/// bytes as the verification pass: no second download, no disk, one more pg_restore pass over the dump's bytes.
/// </summary>
internal sealed class PgRestoreScriptCheck : IAsyncDisposable
{
    private readonly PgProgram _child;
    private readonly Task _scan;
    private bool _closed;

    private PgRestoreScriptCheck(PgProgram child, string what)
    {
        _child = child;
        _scan = Task.Run(async () =>
        {
            try
            {
                await using var check = PsqlScript.CheckRestoreScript(what);
                await child.StandardOutput.CopyToAsync(check).ConfigureAwait(false);
            }
            catch (CorruptObjectException)
            {
                child.Kill(); // refused: its input is no longer wanted, and a full stdout pipe must not stall the verification
                throw;
            }
        });
    }

    /// <summary>Starts <paramref name="pgRestore"/> on a dump of <paramref name="streamFormat"/> (custom or tar); its messages go to <paramref name="log"/>.</summary>
    public static PgRestoreScriptCheck Start(string pgRestore, string streamFormat, string dumpId, TextWriter log) =>
        new(PgProgram.Start(pgRestore, ["--file=-", "--format=" + (streamFormat == "tar" ? "t" : "c")], writeStdin: true, log: log),
            $"dump {dumpId} (its SQL as pg_restore --file=- renders it)");

    /// <summary>A write-only stream that gives the dump's bytes to <paramref name="alongside"/> (if any) and to pg_restore.</summary>
    public Stream Feed(Stream? alongside = null) => new FeedStream(this, alongside);

    /// <summary>After the last byte: waits for pg_restore and the check; refused SQL raises <see cref="CorruptObjectException"/>.</summary>
    public async Task CompleteAsync(CancellationToken ct)
    {
        if (!_closed)
        {
            try { await _child.StandardInput.DisposeAsync().ConfigureAwait(false); }
            catch (IOException) { /* it had read all it wanted */ }
        }
        await _child.WaitAsync(ct).ConfigureAwait(false);
        await _scan.ConfigureAwait(false);
        if (_child.ExitStatus != 0) throw _child.Failure(" (reading the dump before restoring it); nothing was restored");
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _child.Kill();
        try { await _scan.ConfigureAwait(false); }
        catch (Exception e) when (e is CorruptObjectException or IOException) { /* reported by CompleteAsync, or the restore failed first */ }
        _child.Dispose();
    }

    private async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct)
    {
        if (_closed) return;
        try
        {
            await _child.StandardInput.WriteAsync(buffer, ct).ConfigureAwait(false);
        }
        catch (IOException)
        {
            _closed = true; // pg_restore was stopped (refused), or ended the archive before its last bytes (a tar's padding)
        }
    }

    private sealed class FeedStream(PgRestoreScriptCheck check, Stream? alongside) : WriteOnlyStream
    {
        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            if (alongside is not null) await alongside.WriteAsync(buffer, ct).ConfigureAwait(false);
            await check.WriteAsync(buffer, ct).ConfigureAwait(false);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() => alongside?.Flush();
        public override Task FlushAsync(CancellationToken ct) => alongside?.FlushAsync(ct) ?? Task.CompletedTask;
    }
}
