using System.Text.RegularExpressions;

namespace CloudArchive.Core.Tests;

/// <summary>
/// The manual (README.md and docs/*.md) cannot rot: every relative link leads to a file or directory of the repository,
/// and every #anchor to a heading of the page it names, as GitHub makes anchors from headings.
/// </summary>
public sealed partial class ManualLinkTests
{
    private static readonly string Repo = SettingsTableTests.Repo;

    [Fact]
    public void EveryRelativeLinkOfTheManualLeadsToAFileAndEveryAnchorToAHeading()
    {
        var pages = Directory.EnumerateFiles(Path.Combine(Repo, "docs"), "*.md").Prepend(Path.Combine(Repo, "README.md")).ToList();
        var broken = new List<string>();
        var checkedLinks = 0;
        foreach (var page in pages)
        {
            var name = Path.GetRelativePath(Repo, page);
            foreach (var (line, target) in Links(File.ReadAllLines(page)))
            {
                if (Scheme().IsMatch(target)) continue; // https:, mailto: ...: not the repository's
                checkedLinks++;
                var hash = target.IndexOf('#', StringComparison.Ordinal);
                var path = hash < 0 ? target : target[..hash];
                var anchor = hash < 0 ? null : Uri.UnescapeDataString(target[(hash + 1)..]);
                var file = path.Length == 0 ? page : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, Uri.UnescapeDataString(path)));
                if (!File.Exists(file) && !Directory.Exists(file))
                    broken.Add($"{name}:{line}: {target}: no such file");
                else if (anchor is not null && (!file.EndsWith(".md", StringComparison.Ordinal) || !Anchors(File.ReadAllLines(file)).Contains(anchor)))
                    broken.Add($"{name}:{line}: {target}: no heading with the anchor #{anchor} in {Path.GetRelativePath(Repo, file)}");
            }
        }
        Assert.True(checkedLinks > 50, $"only {checkedLinks} relative links found in the manual: is the link reader broken?");
        Assert.True(broken.Count == 0, "broken links in the manual:\n" + string.Join('\n', broken));
    }

    [Theory]
    [InlineData("## Agent (`--agent`)", "agent---agent")]
    [InlineData("## Prefetch (`wal-fetch --prefetch N`)", "prefetch-wal-fetch---prefetch-n")]
    [InlineData("## restore_command and recovery safety", "restore_command-and-recovery-safety")]
    [InlineData("## The 3 a.m. restore, step by step", "the-3-am-restore-step-by-step")]
    [InlineData("### backup-push --remote", "backup-push---remote")]
    [InlineData("## See [Encryption](encryption.md) **now**", "see-encryption-now")]
    public void AnchorsAreGitHubs(string heading, string anchor) => Assert.Contains(anchor, Anchors([heading]));

    [Fact]
    public void ARepeatedHeadingGetsANumberedAnchorAndCodeIsNoHeading()
    {
        var anchors = Anchors(["# Title", "## Usage", "```", "# not a heading", "```", "    # nor this", "## Usage"]);
        Assert.Equal(new[] { "title", "usage", "usage-1" }, anchors.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void LinksInCodeAreNotLinks()
    {
        var links = Links(["see [setup](setup.md#a) and `[x](not-a-link.md)`", "```", "[y](nor-this.md)", "```", "[`wal-push`](#wal-push)"]);
        Assert.Equal(new[] { (1, "setup.md#a"), (5, "#wal-push") }, links);
    }

    /// <summary>The targets of the inline links of a page, with their line numbers; code spans and fenced blocks hold none.</summary>
    private static List<(int Line, string Target)> Links(IReadOnlyList<string> lines)
    {
        var links = new List<(int, string)>();
        var fenced = false;
        for (var i = 0; i < lines.Count; i++)
        {
            if (lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal)) { fenced = !fenced; continue; }
            if (fenced) continue;
            foreach (Match m in Link().Matches(CodeSpan().Replace(lines[i], "")))
                links.Add((i + 1, m.Groups[1].Value));
        }
        return links;
    }

    /// <summary>The anchors GitHub gives a page's headings: the text as rendered, lower case, without punctuation but - and _,
    /// each space a hyphen; a repeated one gets -1, -2 ...</summary>
    private static HashSet<string> Anchors(IReadOnlyList<string> lines)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var fenced = false;
        foreach (var line in lines)
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal)) { fenced = !fenced; continue; }
            if (fenced || Heading().Match(line) is not { Success: true } h) continue;
            var text = LinkText().Replace(h.Groups[1].Value.Trim().TrimEnd('#').Trim(), "$1");
            var slug = string.Concat(text.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_')).Replace(' ', '-');
            var n = seen.GetValueOrDefault(slug);
            seen[slug] = n + 1;
            anchors.Add(n == 0 ? slug : $"{slug}-{n}");
        }
        return anchors;
    }

    [GeneratedRegex(@"!?\[[^\]]*\]\(([^)\s]+)(?:\s+""[^""]*"")?\)")]
    private static partial Regex Link();

    [GeneratedRegex(@"\[([^\]]*)\]\([^)]*\)")]
    private static partial Regex LinkText();

    [GeneratedRegex("`[^`]*`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"^ {0,3}#{1,6}\s+(.*)$")]
    private static partial Regex Heading();

    [GeneratedRegex("^[a-zA-Z][a-zA-Z0-9+.-]*:")]
    private static partial Regex Scheme();
}
