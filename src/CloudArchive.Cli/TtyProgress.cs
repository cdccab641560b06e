using System.Diagnostics;
using System.Globalization;

namespace CloudArchive.Cli;

/// <summary>
/// Progress of a long operation on stderr, redrawn twice a second — only when stderr is a terminal;
/// otherwise the command prints just its one summary line.
/// </summary>
internal sealed class TtyProgress : IProgress<long>, IDisposable
{
    private readonly string _verb;
    private readonly long _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Timer _timer;
    private long _done;

    private TtyProgress(string verb, long total)
    {
        _verb = verb;
        _total = total;
        _timer = new Timer(_ => Draw(), null, 500, 500);
    }

    public static TtyProgress? Start(string verb, long total = 0) => Console.IsErrorRedirected ? null : new TtyProgress(verb, total);

    public void Report(long value) => Interlocked.Add(ref _done, value);

    private void Draw()
    {
        var done = Interlocked.Read(ref _done);
        var seconds = Math.Max(0.001, _clock.Elapsed.TotalSeconds);
        var rate = done / 1048576.0 / seconds;
        var line = _total > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{_verb} {done / 1048576.0:0} / {_total / 1048576.0:0} MiB ({100.0 * done / _total:0}%), " +
                $"{rate:0.0} MiB/s, ETA {(rate > 0 ? (_total - done) / 1048576.0 / rate : 0):0} s   ")
            : string.Create(CultureInfo.InvariantCulture, $"{_verb} {done / 1048576.0:0} MiB, {rate:0.0} MiB/s, {seconds:0} s   ");
        lock (Console.Error) Console.Error.Write("\r" + line);
    }

    public void Dispose()
    {
        _timer.Dispose();
        lock (Console.Error) Console.Error.Write("\r" + new string(' ', 79) + "\r");
    }
}
