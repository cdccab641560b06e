using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// The Debian package: packaging/build-deb.sh builds it from the published binary, dpkg installs it, the installed
/// command runs README's demo, and purging it leaves nothing behind. Installing needs root, as CI runs the tests.
/// </summary>
[Collection(EtcCloudArchive.Name)]
public sealed partial class PackageTests
{
    private const string Installed = "/usr/bin/cloudarchive";

    /// <summary>The one version: Directory.Build.props's, which the package is named after.</summary>
    private static string RepoVersion() =>
        VersionElement().Match(File.ReadAllText(Path.Combine(TestEnv.RepoRoot, "Directory.Build.props"))) is { Success: true } m
            ? m.Groups[1].Value
            : throw new InvalidOperationException("no <Version> in Directory.Build.props");

    [Fact]
    public async Task TheBinaryReportsTheRepositorysVersion()
    {
        var r = await Cli.RunBareAsync(["--version"]);

        Assert.True(r.ExitCode == 0, r.ToString());
        // System.CommandLine prints the informational version: ours, then "+" and the commit it was built from.
        Assert.Matches($"^{Regex.Escape(RepoVersion())}(\\+[0-9a-f]{{40}})?$", r.Stdout.Trim());
    }

    [Fact]
    public async Task TheDebInstallsACommandThatRunsTheDemoAndPurgesWithoutATrace()
    {
        Assert.True(TestEnv.IsRoot, "installing the .deb needs root: run the tests as root, as CI does (infra/test.sh)");
        var before = await Proc.RunAsync("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "cloudarchive");
        Assert.False(before.Stdout.StartsWith("i", StringComparison.Ordinal),
            "a cloudarchive package is already installed here; the test would replace and purge it: remove it first (dpkg --purge cloudarchive)");
        var version = RepoVersion();
        var work = TestEnv.NewWorkDir("deb");

        var build = await Proc.RunAsync(Proc.Info(Path.Combine(TestEnv.RepoRoot, "packaging", "build-deb.sh"),
            ["--binary", TestEnv.Binary, "--out", work]), TimeSpan.FromMinutes(3));
        Assert.True(build.ExitCode == 0, build.ToString());
        var deb = build.Stdout.Trim();
        Assert.Equal(Path.Combine(work, $"cloudarchive_{version}_amd64.deb"), deb);

        var demo = Path.Combine(work, "demo");
        ProcResult? purge = null;
        try
        {
            var install = await Proc.RunAsync(Proc.Info("dpkg", ["-i", deb]), TimeSpan.FromMinutes(2));
            Assert.True(install.ExitCode == 0, install.ToString());
            Assert.Equal(version, (await Proc.CheckAsync(Proc.RunAsync("dpkg-query", "-W", "-f", "${Version}", "cloudarchive"))).Stdout);

            var reported = await Proc.RunAsync(Installed, "--version");
            Assert.True(reported.ExitCode == 0, reported.ToString());
            Assert.StartsWith(version, reported.Stdout.Trim(), StringComparison.Ordinal);

            // The manual page is found by man, renders without a warning, and has a section for every command.
            Assert.Equal("/usr/share/man/man1/cloudarchive.1.gz", (await Proc.CheckAsync(Proc.RunAsync("man", "-w", "cloudarchive"))).Stdout.Trim());
            var page = await Proc.RunAsync(Proc.Info("man", ["--warnings", "cloudarchive"], new Dictionary<string, string?> { ["MANWIDTH"] = "100", ["LC_ALL"] = "C.UTF-8" }));
            Assert.True(page.ExitCode == 0 && page.Stderr.Length == 0, page.ToString());
            var commands = (await Proc.CheckAsync(Proc.RunAsync(Installed, "--help"))).Stdout.Split("Commands:")[1]
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(' ')[0]).ToList();
            Assert.Contains("wal-push", commands);
            foreach (var command in commands)
                Assert.Matches($"(?m)^ +{Regex.Escape(command)}$", page.Stdout);
            Assert.Contains("EXIT STATUS", page.Stdout);

            // The example config is there, and only an example: the default config file (cloudarchive.env) is not installed, so none is read.
            Assert.True(File.Exists("/etc/cloudarchive/cloudarchive.env.example"));
            Assert.True(File.Exists("/usr/share/doc/cloudarchive/copyright"));
            var config = await Proc.RunAsync(Installed, "config");
            Assert.True(config.ExitCode == 0, config.ToString());
            Assert.Contains("[default]", config.Stdout);
            Assert.DoesNotContain("[config file", config.Stdout);

            // README's demo with the installed command: archive, back up, recover to a point in time, compare the rows.
            var run = await Proc.RunAsync(Proc.Info("bash", [TestEnv.Infra("demo.sh")], new Dictionary<string, string?>
            {
                ["DEMO_CLOUDARCHIVE_BIN"] = Installed,
                ["CLOUDARCHIVE_DEMO_DIR"] = demo,
                ["DEMO_CLOUDARCHIVE_PORT"] = TwoFreePorts().ToString(),
            }), TimeSpan.FromMinutes(5));
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Contains("recovered cluster has 1000 wanted, 0 mistaken orders", run.Stdout);
            Assert.Contains($"demo: point-in-time recovery from file://{demo}/store succeeded", run.Stdout);
            Assert.False(Directory.Exists(Path.Combine(demo, "bin")), "the demo published its own binary instead of running the installed one");
            Assert.Contains($"restore_command = '{Installed} wal-fetch", await File.ReadAllTextAsync(Path.Combine(demo, "restored", "data", "postgresql.auto.conf")));
        }
        finally
        {
            // A failed demo may leave its clusters running.
            foreach (var cluster in new[] { "source", "restored" })
                await Proc.RunAsync(TestEnv.Infra("pg-cluster.sh"), "stop", Path.Combine(demo, cluster), "immediate");
            purge = await Proc.RunAsync(Proc.Info("dpkg", ["--purge", "cloudarchive"]), TimeSpan.FromMinutes(2));
        }

        Assert.True(purge.ExitCode == 0, purge.ToString());

        Assert.False(File.Exists(Installed), "dpkg --purge left /usr/bin/cloudarchive");
        Assert.False(Directory.Exists("/etc/cloudarchive"), "dpkg --purge left /etc/cloudarchive");
        Assert.False(Directory.Exists("/usr/share/doc/cloudarchive"), "dpkg --purge left /usr/share/doc/cloudarchive");
    }

    /// <summary>A port free on 127.0.0.1 whose successor is free too: the demo's recovered cluster listens on the next one.</summary>
    private static int TwoFreePorts()
    {
        while (true)
        {
            using var first = new TcpListener(IPAddress.Loopback, 0);
            first.Start();
            var port = ((IPEndPoint)first.LocalEndpoint).Port;
            if (port == IPEndPoint.MaxPort) continue;
            try
            {
                using var second = new TcpListener(IPAddress.Loopback, port + 1);
                second.Start();
                return port;
            }
            catch (SocketException) { }
        }
    }

    [GeneratedRegex("<Version>([^<]+)</Version>")]
    private static partial Regex VersionElement();
}
