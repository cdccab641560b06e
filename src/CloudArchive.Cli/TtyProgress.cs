using System.Diagnostics;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Cli;

/// <summary>
/// Progress of a long operation on stderr, redrawn twice a second — only when stderr is a terminal;
/// otherwise the command prints just its one summary line. Never on stdout, which scripts may parse.
/// </summary>
internal sealed class TtyProgress : IProgressPass
{
    private readonly string _verb;
    private readonly long _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Timer _timer;
    private readonly Lock _gate = new();
    private long _done;
    private int _drawn; // length of the line on the terminal, 0: nothing to clear
    private bool _disposed;

    private TtyProgress(string verb, long total)
    {
        _verb = verb;
        _total = total;
        _timer = new Timer(_ => Draw(), null, 500, 500);
    }

    /// <summary>A display of <paramref name="total"/> bytes (0: not known), or null when stderr is not a terminal.</summary>
    public static TtyProgress? Start(string verb, long total = 0) => Console.IsErrorRedirected ? null : new TtyProgress(verb, total);

    public void Report(long value) => Interlocked.Add(ref _done, value);

    private void Draw()
    {
        var done = Interlocked.Read(ref _done);
        var seconds = Math.Max(0.001, _clock.Elapsed.TotalSeconds);
        var rate = done / 1048576.0 / seconds;
        var line = _total > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{_verb} {done / 1048576.0:0} / {_total / 1048576.0:0} MiB ({100.0 * done / _total:0}%), " +
                $"{rate:0.0} MiB/s, {(int)seconds} s, ETA {(rate > 0 ? Math.Max(0, _total - done) / 1048576.0 / rate : 0):0} s")
            : string.Create(CultureInfo.InvariantCulture, $"{_verb} {done / 1048576.0:0} MiB, {rate:0.0} MiB/s, {(int)seconds} s");
        lock (_gate)
        {
            if (_disposed) return;
            // Padded over a longer previous line, so no digits of it are left behind.
            Console.Error.Write("\r" + line.PadRight(_drawn));
            _drawn = Math.Max(_drawn, line.Length);
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_drawn > 0) Console.Error.Write("\r" + new string(' ', _drawn) + "\r");
        }
    }
}
