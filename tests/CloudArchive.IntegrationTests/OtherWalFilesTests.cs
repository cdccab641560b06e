namespace CloudArchive.IntegrationTests;

/// <summary>Timeline history files, .partial segments and backup history files: archived, restored byte-identical, never overwritten.</summary>
public sealed class OtherWalFilesTests
{
    public static TheoryData<string> Names => new()
    {
        "00000002.history",
        "000000010000000000000003.partial",
        "000000010000000000000002.00000028.backup",
    };

    private static byte[] Content(string name, int seed) => name switch
    {
        _ when name.EndsWith(".history", StringComparison.Ordinal) => TestSegments.Text("1\t0/3000000\tno recovery target specified", seed, 300 + seed),
        _ when name.EndsWith(".backup", StringComparison.Ordinal) =>
            TestSegments.Text("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)", seed, 400 + seed),
        _ => TestSegments.Segment(name, seed),
    };

    [Theory]
    [MemberData(nameof(Names))]
    public async Task ArchivedAndRestoredByteIdentical(string name)
    {
        var store = LocalStore.Create("other-roundtrip", out var work);
        var content = Content(name, seed: 1);
        await store.Cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "pg_wal"), name, content));

        var dest = Path.Combine(work, "restored", "RECOVERYXLOG");
        TestEnv.CreateDirectory(Path.GetDirectoryName(dest)!);
        await store.Cli.OkAsync("wal-fetch", name, dest);

        Assert.Equal(content, await File.ReadAllBytesAsync(dest));
        Assert.Single(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(dest)!));
        Assert.Equal(TestSegments.Sha256(content), store.Record(name).GetProperty("sha256").GetString());
    }

    [Theory]
    [MemberData(nameof(Names))]
    public async Task DifferentContentIsRefused(string name)
    {
        var store = LocalStore.Create("other-refuse", out var work);
        var original = Content(name, seed: 1);
        await store.Cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "a"), name, original));
        var before = await File.ReadAllBytesAsync(store.ObjectPath(name));

        var again = await store.Cli.RunAsync("wal-push", TestSegments.Write(Path.Combine(work, "b"), name, original));
        Expect.Exit(again, 0);
        Assert.Contains("already archived", Assert.Single(again.StderrLines));

        var r = await store.Cli.RunAsync("wal-push", TestSegments.Write(Path.Combine(work, "c"), name, Content(name, seed: 2)));

        Expect.OneLineError(r, 3);
        Assert.Equal(before, await File.ReadAllBytesAsync(store.ObjectPath(name)));
        var dest = Path.Combine(work, "fetched");
        await store.Cli.OkAsync("wal-fetch", name, dest);
        Assert.Equal(original, await File.ReadAllBytesAsync(dest));
    }

    [Fact]
    public async Task APartialSegmentAndItsSegmentAreSeparateFiles()
    {
        // After a promotion the old timeline's last segment is archived as .partial, and the full segment may follow.
        var store = LocalStore.Create("other-partial", out var work);
        var partial = TestSegments.Segment("000000010000000000000003.partial", seed: 1);
        var full = TestSegments.Segment("000000010000000000000003", seed: 2);
        await store.Cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "pg_wal"), "000000010000000000000003.partial", partial));
        await store.Cli.OkAsync("wal-push", TestSegments.Write(Path.Combine(work, "pg_wal"), "000000010000000000000003", full));

        await store.Cli.OkAsync("wal-fetch", "000000010000000000000003.partial", Path.Combine(work, "p"));
        await store.Cli.OkAsync("wal-fetch", "000000010000000000000003", Path.Combine(work, "f"));
        Assert.Equal(partial, await File.ReadAllBytesAsync(Path.Combine(work, "p")));
        Assert.Equal(full, await File.ReadAllBytesAsync(Path.Combine(work, "f")));
    }
}
