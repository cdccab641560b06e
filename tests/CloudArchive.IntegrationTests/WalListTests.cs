using System.Text.Json;

namespace CloudArchive.IntegrationTests;

/// <summary>wal-list: what is archived, per timeline, as ranges with their LSNs, and the gaps between them.</summary>
public sealed class WalListTests
{
    private static async Task<LocalStore> ArchiveWithAGapAsync()
    {
        var store = LocalStore.Create("list", out var work);
        var pgWal = Path.Combine(work, "pg_wal");
        foreach (var n in new[] { 1, 2, 3, 5, 6 })
            await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(pgWal, $"0000000100000000{n:X8}", seed: n));
        foreach (var n in new[] { 7, 8 })
            await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(pgWal, $"0000000200000000{n:X8}", seed: 20 + n));
        await store.Cli.OkAsync("wal-push", TestSegments.Write(pgWal, "00000002.history", TestSegments.Text("1\t0/7000000\tno recovery target specified", 2, 100)));
        return store;
    }

    [Fact]
    public async Task TextNamesTheRangesAndTheOneGap()
    {
        var store = await ArchiveWithAGapAsync();

        var r = await store.Cli.OkAsync("wal-list");
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        string Line(string first, string last) =>
            Assert.Single(lines, l => l.Contains($"{first} - {last}", StringComparison.Ordinal) && !l.Contains("GAP", StringComparison.Ordinal));
        var r1 = Line("000000010000000000000001", "000000010000000000000003");
        Assert.Contains("0/100000 - 0/400000", r1);
        var r2 = Line("000000010000000000000005", "000000010000000000000006");
        Assert.Contains("0/500000 - 0/700000", r2);
        var r3 = Line("000000020000000000000007", "000000020000000000000008");
        Assert.Contains("0/700000 - 0/900000", r3);

        var gap = Assert.Single(lines, l => l.Contains("GAP", StringComparison.Ordinal));
        Assert.Contains("000000010000000000000004 - 000000010000000000000004", gap);
        Assert.Contains("0/400000 - 0/500000", gap);
        Assert.Single(lines, l => l.Contains("00000002.history", StringComparison.Ordinal) && l.Contains("timeline 2", StringComparison.Ordinal));
        Assert.DoesNotContain("00000001.history", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [Fact]
    public async Task JsonCarriesTheSameFacts()
    {
        var store = await ArchiveWithAGapAsync();

        var r = await store.Cli.OkAsync("wal-list", "--json");
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;

        Assert.True(root.GetProperty("hasGaps").GetBoolean());
        Assert.Equal(TestSegments.OneMib, root.GetProperty("segmentSize").GetInt64());
        Assert.Equal(TestSegments.SystemId.ToString(), root.GetProperty("systemIdentifier").GetString());
        var timelines = root.GetProperty("timelines").EnumerateArray().ToList();
        Assert.Equal([1u, 2u], timelines.Select(t => t.GetProperty("timeline").GetUInt32()));

        var t1 = timelines[0];
        Assert.False(t1.GetProperty("historyFile").GetBoolean());
        Assert.Equal(5, t1.GetProperty("segments").GetInt64());
        Assert.Equal(
            [("000000010000000000000001", "000000010000000000000003", 3L, "0/100000", "0/400000"),
             ("000000010000000000000005", "000000010000000000000006", 2L, "0/500000", "0/700000")],
            Ranges(t1, "ranges"));
        Assert.Equal([("000000010000000000000004", "000000010000000000000004", 1L, "0/400000", "0/500000")], Ranges(t1, "gaps"));

        var t2 = timelines[1];
        Assert.True(t2.GetProperty("historyFile").GetBoolean());
        Assert.Equal(2, t2.GetProperty("segments").GetInt64());
        Assert.Equal([("000000020000000000000007", "000000020000000000000008", 2L, "0/700000", "0/900000")], Ranges(t2, "ranges"));
        Assert.Empty(Ranges(t2, "gaps"));
    }

    [Fact]
    public async Task PartialAndBackupHistoryFilesAreListedApart()
    {
        var store = LocalStore.Create("list-other", out var work);
        var pgWal = Path.Combine(work, "pg_wal");
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(pgWal, "000000010000000000000001", seed: 1));
        await store.Cli.OkAsync("wal-push", TestSegments.WriteSegment(pgWal, "000000010000000000000002.partial", seed: 2));
        await store.Cli.OkAsync("wal-push", TestSegments.Write(pgWal, "000000010000000000000001.00000028.backup", TestSegments.Text("START WAL LOCATION: 0/100028", 1, 200)));

        using var doc = JsonDocument.Parse((await store.Cli.OkAsync("wal-list", "--json")).Stdout);
        var t = Assert.Single(doc.RootElement.GetProperty("timelines").EnumerateArray());
        Assert.Equal(1, t.GetProperty("segments").GetInt64());
        Assert.Equal(["000000010000000000000002.partial"], t.GetProperty("partial").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["000000010000000000000001.00000028.backup"], t.GetProperty("backupHistory").EnumerateArray().Select(e => e.GetString()));
        Assert.False(doc.RootElement.GetProperty("hasGaps").GetBoolean());
    }

    [Fact]
    public async Task AnEmptyStoreListsNoWal()
    {
        var work = TestEnv.NewWorkDir("list-empty");
        var store = new LocalStore(Path.Combine(work, "store"), create: false);
        LocalStore.MakeDirectory(store.Dir, init: false);
        Assert.Contains("initialised", (await store.Cli.OkAsync("store-init")).Stdout);

        var text = await store.Cli.OkAsync("wal-list");
        Assert.Equal("no WAL archived", text.Stdout.Trim());

        using var doc = JsonDocument.Parse((await store.Cli.OkAsync("wal-list", "--json")).Stdout);
        Assert.Empty(doc.RootElement.GetProperty("timelines").EnumerateArray());
        Assert.False(doc.RootElement.GetProperty("hasGaps").GetBoolean());
    }

    private static List<(string, string, long, string, string)> Ranges(JsonElement timeline, string property) =>
        timeline.GetProperty(property).EnumerateArray()
            .Select(e => (e.GetProperty("first").GetString()!, e.GetProperty("last").GetString()!, e.GetProperty("segments").GetInt64(),
                e.GetProperty("startLsn").GetString()!, e.GetProperty("endLsn").GetString()!))
            .ToList();
}
