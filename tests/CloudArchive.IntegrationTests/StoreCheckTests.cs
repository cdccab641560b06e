namespace CloudArchive.IntegrationTests;

/// <summary>store-check against each real backend: what it reports is what the store does.</summary>
public sealed class StoreCheckTests
{
    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task ReportsThatConditionalWritesAreHonouredWithFigures(string kind)
    {
        var work = TestEnv.NewWorkDir("store-check-" + kind);
        var store = TestStore.Create(kind, work);

        var r = await store.RunAsync("store-check");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("conditional write  honoured", r.Stdout);
        Assert.Matches(@"round trip +\d+\.\d ms", r.Stdout);
        Assert.Matches(@"throughput +write \d+\.\d MiB/s, read \d+\.\d MiB/s", r.Stdout);
        Assert.Contains("delete             allowed", r.Stdout);
        // Ceph RGW 16 completes a multipart upload over an existing key despite If-None-Match: * (measured);
        // Azurite refuses a block-list commit over an existing blob.
        Assert.Contains(kind switch
        {
            "s3" => "condition ignored on multi-request commits",
            "azure" => "honoured on multi-request",
            _ => "large write        not applicable",
        }, r.Stdout);
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
    }

    [Fact]
    public async Task LeavesNoProbeBehind()
    {
        var work = TestEnv.NewWorkDir("store-check-clean");
        var store = TestStore.Create("local", work);

        var r = await store.RunAsync("store-check");

        Assert.True(r.ExitCode == 0, r.ToString());
        var root = new Uri(store.Url).LocalPath;
        // Only the store's marker stays: the check's first write made the empty directory a store.
        Assert.Equal(["cloudarchive-store.json"], Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).StartsWith('.')).Select(f => Path.GetRelativePath(root, f)));
    }
}
