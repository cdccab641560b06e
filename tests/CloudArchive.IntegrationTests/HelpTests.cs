using System.Text.RegularExpressions;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// The help is the manual's first page: `cloudarchive --help` and each command's `--help` (which the manual page
/// cloudarchive(1) is made from) give an example line of the command in use.
/// </summary>
public sealed partial class HelpTests
{
    [Fact]
    public async Task TheHelpAndEveryCommandsHelpGiveAnExample()
    {
        var top = await Cli.RunBareAsync(["--help"]);
        Assert.True(top.ExitCode == 0, top.ToString());
        Assert.Matches(Example(), top.Stdout.Split("Usage:")[0]);

        // The commands --help lists: one a line, the name first (the hidden worker commands are not listed).
        var commands = top.Stdout.Split("Commands:")[1].Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Trim().Split(' ')[0]).ToList();
        Assert.Contains("wal-push", commands);
        Assert.Contains("drill", commands);
        Assert.DoesNotContain("wal-agent", commands);

        var without = new List<string>();
        foreach (var command in commands)
        {
            var help = await Cli.RunBareAsync([command, "--help"]);
            Assert.True(help.ExitCode == 0, $"{command} --help: {help}");
            // The example is in the command's own description, above its usage.
            if (!Example().IsMatch(help.Stdout.Split("Usage:")[0])) without.Add(command);
        }
        Assert.True(without.Count == 0, "these commands' --help gives no example line (Example: cloudarchive ...): " + string.Join(", ", without));
    }

    /// <summary>
    /// The reference follows the code: every option any command's --help lists is in docs/reference.md (in the command's
    /// section or the settings table), so an option added without its documentation fails here.
    /// </summary>
    [Fact]
    public async Task EveryOptionOfEveryCommandIsInTheReference()
    {
        var reference = await File.ReadAllTextAsync(Path.Combine(TestEnv.RepoRoot, "docs", "reference.md"));
        var top = await Cli.RunBareAsync(["--help"]);
        var commands = top.Stdout.Split("Commands:")[1].Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(' ')[0]).ToList();
        var missing = new List<string>();
        foreach (var command in commands)
        {
            var help = await Cli.RunBareAsync([command, "--help"]);
            foreach (Match m in OptionLine().Matches(help.Stdout.Split("Options:").Last()))
                if (m.Groups[1].Value is not ("--help" or "--version") && !Regex.IsMatch(reference, $@"(?<![\w-]){Regex.Escape(m.Groups[1].Value)}(?![\w-])"))
                    missing.Add($"{command} {m.Groups[1].Value}");
        }
        Assert.True(commands.Count > 15, top.Stdout);
        Assert.True(missing.Count == 0, "options docs/reference.md does not name: " + string.Join(", ", missing.Distinct()));
    }

    [GeneratedRegex(@"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", RegexOptions.Multiline)]
    private static partial Regex OptionLine();

    /// <summary>"Example:" and a command line: cloudarchive ..., or the archive_command / restore_command that runs it.</summary>
    [GeneratedRegex(@"Example: (cloudarchive [a-z-]+|(archive|restore)_command = 'cloudarchive [a-z-]+ %)")]
    private static partial Regex Example();
}
