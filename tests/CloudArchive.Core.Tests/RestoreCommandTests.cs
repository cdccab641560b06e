using System.Diagnostics;
using CloudArchive.Core.Backup;

namespace CloudArchive.Core.Tests;

/// <summary>The restore_command restore writes survives PostgreSQL's % substitution and /bin/sh unchanged.</summary>
public sealed class RestoreCommandTests
{
    /// <summary>What PostgreSQL does with restore_command: replace %f, %p and %%, then run it with /bin/sh -c.</summary>
    private static string[] RunAsPostgresWould(string command, string f, string p)
    {
        var expanded = new System.Text.StringBuilder();
        for (var i = 0; i < command.Length; i++)
        {
            if (command[i] == '%' && i + 1 < command.Length)
            {
                var c = command[++i];
                expanded.Append(c switch { 'f' => f, 'p' => p, '%' => "%", _ => "%" + c });
            }
            else expanded.Append(command[i]);
        }
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(expanded.ToString());
        using var sh = Process.Start(psi)!;
        var output = sh.StandardOutput.ReadToEnd();
        sh.WaitForExit();
        Assert.Equal(0, sh.ExitCode);
        return output.Split('\0', StringSplitOptions.None)[..^1];
    }

    [Theory]
    [InlineData("file:///var/lib/cloudarchive")]
    [InlineData("file:///srv/a b/store")]
    [InlineData("file:///srv/$HOME/`id`/$(id)/it's/\"q\"/back\\slash/100%25/%f")]
    [InlineData("--config=/etc/x;rm -rf /")]
    public void EveryArgumentReachesTheProgramUnchanged(string value)
    {
        var command = RestoreCommand.Build(["/usr/bin/printf", "%s\\0", "wal-fetch", "%f", "%p", "--store", value]);

        var args = RunAsPostgresWould(command, "000000010000000000000003", "pg_wal/RECOVERYXLOG");

        Assert.Equal(["wal-fetch", "000000010000000000000003", "pg_wal/RECOVERYXLOG", "--store", value], args);
    }

    [Fact]
    public void PlainArgumentsStayReadable()
    {
        Assert.Equal("/usr/local/bin/cloudarchive wal-fetch %f %p --store s3://bucket/prefix",
            RestoreCommand.Build(["/usr/local/bin/cloudarchive", "wal-fetch", "%f", "%p", "--store", "s3://bucket/prefix"]));
    }

    [Fact]
    public void ConfigFileStringsEscapeBackslashesAndQuotes()
    {
        Assert.Equal(@"'a\\b''c'", BackupRestorer.Quote(@"a\b'c"));
    }
}
