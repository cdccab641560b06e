using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>Async push's bookkeeping between archive_status and the spool, on a real directory.</summary>
public sealed class ArchiveQueueTests : IDisposable
{
    private readonly string _pgWal = Directory.CreateTempSubdirectory("archive-queue-").FullName;
    private readonly ArchiveQueue _queue;

    public ArchiveQueueTests()
    {
        Directory.CreateDirectory(Path.Combine(_pgWal, "archive_status"));
        Directory.CreateDirectory(Path.Combine(_pgWal, ".cloudarchive", "push"));
        _queue = new ArchiveQueue(_pgWal, Path.Combine(_pgWal, ".cloudarchive", "push"));
    }

    public void Dispose() => Directory.Delete(_pgWal, recursive: true);

    private string Ready(string name, int size = 100)
    {
        var path = Path.Combine(_pgWal, name);
        File.WriteAllBytes(path, new byte[size]);
        File.WriteAllText(Path.Combine(_pgWal, "archive_status", name + ".ready"), "");
        return path;
    }

    [Fact]
    public void TimelineHistoryFilesComeFirstThenNameOrder()
    {
        foreach (var n in new[] { "000000020000000000000004", "000000010000000000000003.partial", "00000002.history",
                     "000000010000000000000002", "000000010000000000000002.00000028.backup", "00000003.history" })
            Ready(n);
        File.WriteAllText(Path.Combine(_pgWal, "archive_status", "000000010000000000000001.done"), "");

        Assert.Equal(["00000002.history", "00000003.history", "000000010000000000000002", "000000010000000000000002.00000028.backup",
                "000000010000000000000003.partial", "000000020000000000000004"],
            _queue.Ready().Select(n => n.Name));
    }

    [Fact]
    public void AnOutcomeCountsOnlyForTheVersionOfTheFileThatWasPushed()
    {
        var name = WalFileName.Parse("000000010000000000000007");
        var path = Ready(name.Name);
        _queue.MarkDone(name, FileIdentity.Of(path)!);
        Assert.True(_queue.TakeDone(name, path));
        Assert.False(_queue.TakeDone(name, path)); // consumed

        _queue.MarkDone(name, FileIdentity.Of(path)!);
        File.WriteAllBytes(path, new byte[101]); // another version of the file under the same name
        Assert.False(_queue.TakeDone(name, path));
        Assert.False(_queue.HasOutcome(name)); // the stale outcome is discarded, not kept for later
    }

    [Fact]
    public void AFailureIsReportedOnceWithItsExitCodeAndReason()
    {
        var name = WalFileName.Parse("000000010000000000000008");
        Ready(name.Name);
        _queue.MarkFailed(name, ExitCode.RefusedOverwrite, "already archived with different content\nsecond line");

        var failure = _queue.TakeFailure(name);
        Assert.NotNull(failure);
        Assert.Equal(ExitCode.RefusedOverwrite, failure.ExitCode);
        Assert.Equal("async push of 000000010000000000000008 failed: already archived with different content second line", failure.Message);
        Assert.Null(_queue.TakeFailure(name));
    }

    [Fact]
    public void WaitingBytesCountReadyFilesNotYetPushedAndPruneDropsOutcomesOfArchivedFiles()
    {
        var a = WalFileName.Parse("000000010000000000000001");
        var b = WalFileName.Parse("000000010000000000000002");
        var pathA = Ready(a.Name, 1000);
        Ready(b.Name, 3000);
        Assert.Equal(4000, _queue.WaitingBytes());

        _queue.MarkDone(a, FileIdentity.Of(pathA)!);
        Assert.Equal(3000, _queue.WaitingBytes());

        // PostgreSQL marks a done: its outcome is pruned; b's is kept.
        File.Move(Path.Combine(_pgWal, "archive_status", a.Name + ".ready"), Path.Combine(_pgWal, "archive_status", a.Name + ".done"));
        _queue.MarkFailed(b, ExitCode.StoreUnavailable, "down");
        _queue.Prune();
        Assert.False(_queue.HasOutcome(a));
        Assert.True(_queue.HasOutcome(b));
    }
}
