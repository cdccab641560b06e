using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Tests;

public sealed class RetryPolicyTests
{
    private static readonly RetryPolicy Quick = new(TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5));

    [Fact]
    public async Task RetriesTransientFaultsUntilSuccess()
    {
        var attempts = 0;
        var result = await Quick.RunAsync("reading x", _ =>
        {
            attempts++;
            if (attempts < 4) throw new StoreUnavailableException($"connection refused ({attempts})", transient: true);
            return Task.FromResult("content");
        }, CancellationToken.None);

        Assert.Equal("content", result);
        Assert.Equal(4, attempts);
    }

    [Fact]
    public async Task GivesUpAfterTheBudgetWithANonTransientFault()
    {
        var policy = new RetryPolicy(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(20));
        var attempts = 0;
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => policy.RunAsync<int>("reading x", _ =>
        {
            attempts++;
            throw new StoreUnavailableException("store directory /x does not exist", transient: true);
        }, CancellationToken.None));

        Assert.False(e.Transient);
        Assert.Equal(ExitCode.StoreUnavailable, e.ExitCode);
        Assert.Contains("store directory /x does not exist", e.Message);
        Assert.Contains($"gave up after {attempts} attempts", e.Message);
        Assert.True(attempts > 1, $"{attempts} attempts");
        var inner = Assert.IsType<StoreUnavailableException>(e.InnerException);
        Assert.True(inner.Transient);
    }

    [Fact]
    public async Task ANoBudgetPolicyTriesOnce()
    {
        var attempts = 0;
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => RetryPolicy.None.RunAsync<int>("reading x", _ =>
        {
            attempts++;
            throw new StoreUnavailableException("timeout", transient: true);
        }, CancellationToken.None));
        Assert.Equal(1, attempts);
        Assert.False(e.Transient);
    }

    [Fact]
    public async Task DoesNotRetryANonTransientFault()
    {
        var attempts = 0;
        var fault = new StoreUnavailableException("permission denied", transient: false);
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => Quick.RunAsync<int>("writing x", _ =>
        {
            attempts++;
            throw fault;
        }, CancellationToken.None));
        Assert.Same(fault, e);
        Assert.Equal(1, attempts);
    }

    [Fact]
    public async Task DoesNotRetryOtherFailures()
    {
        var attempts = 0;
        await Assert.ThrowsAsync<CorruptObjectException>(() => Quick.RunAsync<int>("reading x", _ =>
        {
            attempts++;
            throw new CorruptObjectException("bad checksum");
        }, CancellationToken.None));
        Assert.Equal(1, attempts);

        attempts = 0;
        await Assert.ThrowsAsync<IOException>(() => Quick.RunAsync<int>("reading x", _ =>
        {
            attempts++;
            throw new IOException("disk error");
        }, CancellationToken.None));
        Assert.Equal(1, attempts);
    }

    [Fact]
    public async Task CancellationStopsTheRetries()
    {
        using var cts = new CancellationTokenSource();
        var attempts = 0;
        var slow = new RetryPolicy(TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slow.RunAsync<int>("reading x", _ =>
        {
            if (++attempts == 3) cts.Cancel();
            throw new StoreUnavailableException("timeout", transient: true);
        }, cts.Token));
        Assert.Equal(3, attempts);
    }
}
