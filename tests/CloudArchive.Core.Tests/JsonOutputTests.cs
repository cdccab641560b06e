using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using CloudArchive.Core.Output;

namespace CloudArchive.Core.Tests;

/// <summary>The --json views and their documentation in docs/reference.md ("JSON output") name the same fields.</summary>
public sealed partial class JsonOutputTests
{
    public static TheoryData<string> Views => new()
    {
        nameof(BackupView), nameof(WalListView), nameof(TimelineView), nameof(WalRangeView), nameof(PlanView), nameof(PlanView.ChainMember),
        nameof(PlanView.WalSpan), nameof(PlanView.Tablespace), nameof(StatusView), nameof(StatusView.Window), nameof(StatusView.Drill),
        nameof(StatusView.Archived), nameof(StatusView.Dump), nameof(CopyView), nameof(LocksView), nameof(VerifyView),
    };

    private static readonly Dictionary<string, Type> Types = new()
    {
        [nameof(BackupView)] = typeof(BackupView), [nameof(WalListView)] = typeof(WalListView), [nameof(TimelineView)] = typeof(TimelineView),
        [nameof(WalRangeView)] = typeof(WalRangeView), [nameof(PlanView)] = typeof(PlanView), [nameof(PlanView.ChainMember)] = typeof(PlanView.ChainMember),
        [nameof(PlanView.WalSpan)] = typeof(PlanView.WalSpan), [nameof(PlanView.Tablespace)] = typeof(PlanView.Tablespace),
        [nameof(StatusView)] = typeof(StatusView), [nameof(StatusView.Window)] = typeof(StatusView.Window), [nameof(StatusView.Drill)] = typeof(StatusView.Drill),
        [nameof(StatusView.Archived)] = typeof(StatusView.Archived), [nameof(StatusView.Dump)] = typeof(StatusView.Dump),
        [nameof(CopyView)] = typeof(CopyView), [nameof(LocksView)] = typeof(LocksView), [nameof(VerifyView)] = typeof(VerifyView),
    };

    [Theory]
    [MemberData(nameof(Views))]
    public void EveryFieldOfAViewIsDocumentedAndEveryDocumentedFieldIsOne(string view)
    {
        var info = OutputJson.Default.GetTypeInfo(Types[view]) ?? throw new InvalidOperationException($"{view} is not in OutputJson");
        var fields = info.Properties.Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
        var row = File.ReadAllLines(Path.Combine(SettingsTableTests.Repo, "docs", "reference.md")).SingleOrDefault(l => l.StartsWith($"| `{view}` |", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"docs/reference.md has no JSON output row for {view}");
        var documented = Field().Matches(row.Split('|')[3]).Select(m => m.Groups[1].Value).Distinct().Order(StringComparer.Ordinal).ToList();

        Assert.Equal(fields, documented);
        // "?" marks exactly the fields left out when they have no value.
        var optional = info.Properties.Where(p => p.ShouldSerialize is not null).Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
        var marked = Field().Matches(row.Split('|')[3]).Where(m => m.Groups[2].Success).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(optional, marked);
    }

    [GeneratedRegex(@"`([a-zA-Z]+)(\?)?`")]
    private static partial Regex Field();
}
