using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>
/// restore_command's exit contract, where it lives: "not archived" (1) only for a file that is absent, or for a
/// standby that falls back to streaming; any other failure in archive recovery stops recovery (200).
/// </summary>
public sealed class RestoreCommandPolicyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("policy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string DataDirectory(string? signal)
    {
        File.WriteAllText(Path.Combine(_dir, "PG_VERSION"), "15\n");
        if (signal is not null) File.WriteAllText(Path.Combine(_dir, signal), "");
        return _dir;
    }

    [Theory]
    [InlineData(ExitCode.Ok)]
    [InlineData(ExitCode.NotFound)]
    public void SuccessAndAbsenceAreAnsweredAsTheyAre(ExitCode code)
    {
        Assert.Equal(code, RestoreCommandPolicy.For(code, DataDirectory("recovery.signal")));
        Assert.Equal(code, RestoreCommandPolicy.For(code, DataDirectory("standby.signal")));
    }

    [Theory]
    [InlineData(ExitCode.StoreUnavailable)]
    [InlineData(ExitCode.Corrupt)]
    [InlineData(ExitCode.Internal)]
    [InlineData(ExitCode.StoreUnsafe)]
    public void AStoreSideFailureStopsRecoveryAndOnAStandbyFallsBackToStreaming(ExitCode code)
    {
        Assert.Equal(ExitCode.AbortRecovery, RestoreCommandPolicy.For(code, DataDirectory("recovery.signal")));
        Assert.Equal(ExitCode.AbortRecovery, RestoreCommandPolicy.For(code, _dir + "-not-a-data-directory"));
        File.Delete(Path.Combine(_dir, "recovery.signal"));
        Assert.Equal(ExitCode.NotFound, RestoreCommandPolicy.For(code, DataDirectory("standby.signal")));
    }

    [Theory]
    [InlineData(ExitCode.Usage)]
    [InlineData(ExitCode.InvalidInput)]
    [InlineData(ExitCode.NoRecoveryPath)]
    public void AMisconfigurationStopsArchiveRecoveryButElsewhereKeepsItsCode(ExitCode code)
    {
        // Outside a data directory in archive recovery (a person running wal-fetch by hand): the code as documented.
        Assert.Equal(code, RestoreCommandPolicy.For(code, _dir));
        Assert.Equal(code, RestoreCommandPolicy.For(code, DataDirectory(null)));
        // In archive recovery, even swapped %f %p must not read as the end of the archive.
        Assert.Equal(ExitCode.AbortRecovery, RestoreCommandPolicy.For(code, DataDirectory("recovery.signal")));
        // On a standby its own code, below 126: PostgreSQL falls back to streaming.
        File.Delete(Path.Combine(_dir, "recovery.signal"));
        Assert.Equal(code, RestoreCommandPolicy.For(code, DataDirectory("standby.signal")));
    }
}
