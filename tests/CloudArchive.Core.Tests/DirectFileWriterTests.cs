using CloudArchive.Native;

namespace CloudArchive.Core.Tests;

/// <summary>Writes past the page cache: every byte lands where it was written, whatever the alignment of the runs.</summary>
public sealed class DirectFileWriterTests : IDisposable
{
    // Not /tmp's tmpfs, where there is one: the test is about a disk file system that takes O_DIRECT.
    private readonly string _dir = Directory.CreateTempSubdirectory("direct-writer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task RunsOfEveryAlignmentInAnyOrderLandWhereTheyWereWritten()
    {
        const int size = 9 << 20;
        var path = Path.Combine(_dir, "file");
        await using (var created = File.Create(path)) created.SetLength(size + 123); // a relation file created sparse at its size
        var expected = new byte[size + 123];
        new Random(11).NextBytes(expected);
        // Runs as a chain restore hands them: a whole stretch in small pieces, blocks out of order, a last partial page,
        // one run that starts off a 4 KiB boundary, and one larger than a buffer.
        var runs = new List<(int Offset, int Length)>();
        for (var o = 0; o < 3 << 20; o += 8192) runs.Add((o, 8192));
        runs.Add((7 << 20, 8192));
        runs.Add((5 << 20, 1 << 20));
        runs.Add((size, 123));
        runs.Add((4 << 20, 100));
        runs.Add(((4 << 20) + 100, (1 << 20) - 100));
        runs.Add(((6 << 20) + 8192, (1 << 20) - 8192));
        runs.Add((6 << 20, 8192));
        runs.Add(((7 << 20) + 8192, (2 << 20) - 8192));
        runs.Add((3 << 20, 1 << 20));

        var writer = DirectFileWriter.TryOpen(path);
        Assert.NotNull(writer); // this file system takes O_DIRECT: the test covers that path, not only the fallback
        await using (writer)
            foreach (var (offset, length) in runs)
                await writer.WriteAsync(offset, expected.AsMemory(offset, length), CancellationToken.None);

        Assert.Equal(expected, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task AWriteThatFailsFailsTheDisposeNeverPassesSilently()
    {
        var path = Path.Combine(_dir, "file");
        await File.WriteAllBytesAsync(path, new byte[8192]);
        var writer = DirectFileWriter.TryOpen(path)!;
        File.Delete(path);
        Directory.CreateDirectory(path); // the fallback's own open then fails: an unaligned run has nowhere to go

        await writer.WriteAsync(10, new byte[10], CancellationToken.None);

        await Assert.ThrowsAnyAsync<Exception>(async () => await writer.DisposeAsync());
    }
}
