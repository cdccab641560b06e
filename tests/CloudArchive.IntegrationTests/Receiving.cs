using System.Diagnostics;
using System.Text;
using static CloudArchive.IntegrationTests.BackupRestoreTests;

namespace CloudArchive.IntegrationTests;

/// <summary>What the wal-receive tests share: a receiver process, waiting on the server, a primary killed as a lost host is.</summary>
internal static class Receiving
{
    /// <summary>A running wal-receive as the cluster owner, its output collected.</summary>
    internal sealed class Receiver : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _log = new();

        public Receiver(Source s, string conninfo, params string[] extra)
        {
            var psi = Proc.Cloudarchive(["wal-receive", "--config", s.Store.ConfigFile, "--dbname", conninfo, "--log-level", "info", .. extra]);
            _process = Process.Start(psi)!;
            _process.StandardInput.Close();
            _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
            _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public string Log { get { lock (_log) return _log.ToString(); } }

        /// <summary>SIGTERM, then its exit code (it must stop on its own).</summary>
        public async Task<int> StopAsync()
        {
            if (!_process.HasExited) await Proc.RunAsync("kill", "-TERM", _process.Id.ToString());
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await _process.WaitForExitAsync(limit.Token);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            _process.Dispose();
        }
    }

    internal static string Conninfo(PgCluster c) => $"host={c.Dir} port={c.Port} user=postgres";

    internal static async Task WaitForAsync(Func<Task<bool>> done, string what, Func<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (!await done())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"timed out waiting for {what}; the receiver said:\n{log()}");
            await Task.Delay(200);
        }
    }

    /// <summary>Kills the postmaster and every process it started with SIGKILL, as a host that loses power would.</summary>
    internal static async Task KillWithSigkillAsync(PgCluster cluster)
    {
        var pid = int.Parse(File.ReadLines(Path.Combine(cluster.DataDir, "postmaster.pid")).First());
        var children = Directory.EnumerateDirectories("/proc").Select(Path.GetFileName)
            .Where(d => int.TryParse(d, out _))
            .Select(d => (Pid: int.Parse(d!), Stat: TryRead($"/proc/{d}/stat")))
            .Where(p => p.Stat is { } stat && int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]) == pid)
            .Select(p => p.Pid).ToList();
        await Proc.RunAsync("kill", ["-KILL", pid.ToString(), .. children.Select(c => c.ToString())]);
    }

    private static string? TryRead(string path)
    {
        try { return File.ReadAllText(path); } catch (IOException) { return null; }
    }

}
