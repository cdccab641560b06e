using System.Security.Cryptography;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Tests;

/// <summary>
/// The one road from a producer into a conditional put (backup bundles, dumps): what is written arrives whole, a
/// producer that fails leaves no object, and a store that fails is reported as the error, having stopped the producer.
/// </summary>
public sealed class StreamedPutTests
{
    private const string Key = "backups/x/data/00000.tar.zst";

    [Fact]
    public async Task WhatTheProducerWritesIsStoredAndCounted()
    {
        var store = new InMemoryObjectStore();
        // More than the pipe holds (4 MiB), so producer and put must run side by side.
        var content = RandomNumberGenerator.GetBytes(9 << 20);

        var (outcome, written) = await StreamedPut.PutAsync(store, Key, new ObjectMetadata(), async output =>
        {
            for (var at = 0; at < content.Length; at += 100_000)
                await output.WriteAsync(content.AsMemory(at, Math.Min(100_000, content.Length - at)));
        }, CancellationToken.None);

        Assert.IsType<PutOutcome.Created>(outcome);
        Assert.Equal(content.Length, written);
        await using var stored = (await store.OpenReadAsync(Key, CancellationToken.None))!;
        using var copy = new MemoryStream();
        await stored.Content.CopyToAsync(copy);
        Assert.Equal(content, copy.ToArray());
    }

    [Fact]
    public async Task AProducerThatFailsLeavesNoObject()
    {
        var store = new InMemoryObjectStore();

        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => StreamedPut.PutAsync(store, Key, new ObjectMetadata(), async output =>
        {
            await output.WriteAsync(new byte[1 << 20]);
            throw new CloudArchiveException(ExitCode.PostgresFailed, "pg_dump failed: no such table");
        }, CancellationToken.None));

        Assert.Contains("pg_dump failed", e.Message);
        Assert.Empty(store.Keys);
    }

    [Fact(Timeout = 30_000)]
    public async Task AStoreThatFailsIsTheErrorAndIsToldBeforeTheProducerIsAwaited()
    {
        var store = new InMemoryObjectStore { RefusesAccess = true };
        using var feeding = new CancellationTokenSource();
        Exception? told = null;

        // A producer that would write forever unless what feeds it (pg_dump's stdout) is stopped.
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => StreamedPut.PutAsync(store, Key, new ObjectMetadata(), async output =>
        {
            while (true)
            {
                feeding.Token.ThrowIfCancellationRequested();
                await output.WriteAsync(new byte[1 << 16]);
            }
        }, CancellationToken.None, storeError =>
        {
            told = storeError;
            feeding.Cancel();
            return Task.CompletedTask;
        }));

        Assert.Same(e, told);
        Assert.Empty(store.Keys);
    }
}
