using System.Text.RegularExpressions;
using CloudArchive.Core.Configuration;

namespace CloudArchive.Core.Tests;

/// <summary>The settings table is the one declaration: the manual's reference, .env.example and the code follow it.</summary>
public sealed partial class SettingsTableTests
{
    internal static readonly string Repo = FindRepo();

    /// <summary>Where the manual's settings tables are (general, S3, Azure).</summary>
    private const string Reference = "docs/reference.md";

    /// <summary>A whole-number setting's default is declared as a number, and the help's text says the same number.</summary>
    [Fact]
    public void EveryNumericDefaultIsDeclaredAsANumberWithinItsRangeAndTheHelpSaysIt()
    {
        foreach (var s in SettingsTable.All.Where(s => s.Kind == SettingKind.Whole))
        {
            var said = System.Text.RegularExpressions.Regex.Match(s.DefaultText, "^[0-9]+").Value;
            Assert.True(said.Length == 0 ? s.Default is null : s.Default?.ToString(System.Globalization.CultureInfo.InvariantCulture) == said,
                $"{s.Variable}: the help says '{s.DefaultText}', the declared default is {s.Default?.ToString() ?? "none"}");
            if (s.Default is { } d) Assert.InRange(d, s.Min, s.Max);
        }
    }

    [Fact]
    public void EverySettingHasARowInTheReferencesSettingsTables()
    {
        var rows = File.ReadAllLines(Path.Combine(Repo, Reference)).Where(l => l.StartsWith('|')).ToList();
        foreach (var s in SettingsTable.All)
        {
            var row = rows.FirstOrDefault(r => r.Contains($"`{s.Variable}`", StringComparison.Ordinal));
            Assert.True(row is not null, $"{Reference} has no table row for {s.Variable}");
            if (s.Flag is not null)
                Assert.True(row!.Contains($"`{s.Flag}`", StringComparison.Ordinal), $"{Reference}'s row for {s.Variable} does not name its flag {s.Flag}: {row}");
            else
                Assert.True(!row!.Contains("`--", StringComparison.Ordinal), $"{Reference} gives the secret {s.Variable} a flag: {row}");
        }
    }

    [Fact]
    public void EverySettingIsInEnvExample()
    {
        var text = File.ReadAllText(Path.Combine(Repo, ".env.example"));
        foreach (var s in SettingsTable.All)
            Assert.True(Regex.IsMatch(text, $@"^(# )?{s.Variable}=", RegexOptions.Multiline), $".env.example has no {s.Variable}= line");
    }

    /// <summary>README, every page of docs/ and .env.example.</summary>
    private static IEnumerable<string> DocumentPaths() =>
        new[] { "README.md", ".env.example" }.Concat(Directory.EnumerateFiles(Path.Combine(Repo, "docs"), "*.md")
            .Select(page => Path.GetRelativePath(Repo, page)).Order(StringComparer.Ordinal));

    public static TheoryData<string> Documents() => new(DocumentPaths());

    /// <summary>
    /// A CLOUDARCHIVE_* name in the manual is a setting, or a former one that is refused (SettingsTable.Renamed); only
    /// docs/TESTING.md may also name the test harness's variables, those the scripts of infra/ define or read.
    /// </summary>
    [Theory]
    [MemberData(nameof(Documents))]
    public void NoDocumentNamesAVariableThatIsNotInTheTable(string document)
    {
        var known = SettingsTable.All.Select(s => s.Variable).Concat(SettingsTable.Renamed.Select(r => r.Variable)).ToHashSet();
        if (document == Path.Combine("docs", "TESTING.md"))
            foreach (var script in Directory.EnumerateFiles(Path.Combine(Repo, "infra"), "*.sh"))
                known.UnionWith(VariableName().Matches(File.ReadAllText(script)).Select(m => m.Value));
        foreach (Match m in VariableName().Matches(File.ReadAllText(Path.Combine(Repo, document))))
            Assert.True(known.Contains(m.Value), $"{document} names {m.Value}, which is not a setting");
    }

    [Fact]
    public void TheManualsPagesAreAmongTheDocumentsChecked()
    {
        Assert.Contains(Reference, DocumentPaths());
        Assert.Contains(Path.Combine("docs", "TESTING.md"), DocumentPaths());
    }

    [Fact]
    public void NoSourceFileNamesAVariableOutsideTheTable()
    {
        var offenders = Directory.EnumerateFiles(Path.Combine(Repo, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && Path.GetFileName(f) != "SettingsTable.cs"
                        && VariableLiteral().IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(Repo, f))
            .ToList();
        Assert.True(offenders.Count == 0, "a CLOUDARCHIVE_* variable is named as a literal outside SettingsTable.cs in: " + string.Join(", ", offenders));
    }

    [Fact]
    public void FlagsAndVariablesAreUniqueAndSecretsHaveNoFlag()
    {
        Assert.Equal(SettingsTable.All.Count, SettingsTable.All.Select(s => s.Variable).Distinct().Count());
        var flags = SettingsTable.All.Where(s => s.Flag is not null).Select(s => s.Flag).ToList();
        Assert.Equal(flags.Count, flags.Distinct().Count());
        Assert.All(SettingsTable.All.Where(s => s.Secret), s => Assert.Null(s.Flag));
        Assert.All(SettingsTable.All.Where(s => s.Kind == SettingKind.Whole), s => Assert.True(s.Min <= s.Max, s.Variable));
    }

    /// <summary>Sizes read as bytes with units of 1024, Kubernetes' quantities (50Gi, a sizeLimit) included; anything else names the variable.</summary>
    [Fact]
    public void SizesReadAsBytesInPowersOf1024AndKubernetesQuantitiesToo()
    {
        var limit = SettingsTable.DrillDirLimit;
        Assert.Null(limit.ParseSize(null));
        Assert.Equal(53687091200, limit.ParseSize("53687091200"));
        Assert.Equal(50L << 30, limit.ParseSize("50GiB"));
        Assert.Equal(50L << 30, limit.ParseSize("50Gi"));
        Assert.Equal(50L << 30, limit.ParseSize(" 51200MiB "));
        Assert.Equal(3L << 40, limit.ParseSize("3T"));
        foreach (var bad in new[] { "50 GiB", "fifty", "-1", "1.5GiB", "50Pi", "99999999999T" })
        {
            var e = Assert.Throws<CloudArchiveException>(() => limit.ParseSize(bad));
            Assert.Equal(ExitCode.Usage, e.ExitCode);
            Assert.Contains(limit.Variable, e.Message);
        }
    }

    private static string FindRepo()
    {
        for (var dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(Path.Combine(dir, "CloudArchive.sln"))) return dir;
        throw new InvalidOperationException("CloudArchive.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"\b(CLOUDARCHIVE_[A-Z0-9_]*[A-Z0-9]|AZURE_STORAGE_CONNECTION_STRING)\b")]
    private static partial Regex VariableName();

    [GeneratedRegex("\"CLOUDARCHIVE_[A-Z0-9_]+\"")]
    private static partial Regex VariableLiteral();
}
