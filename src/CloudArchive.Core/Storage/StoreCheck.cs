using System.Diagnostics;
using System.Security.Cryptography;

namespace CloudArchive.Core.Storage;

/// <summary>What store-check found on the real store.</summary>
/// <param name="Store">The store's description.</param>
/// <param name="ConditionalWriteHonoured">A second write of the same key was refused: the store never overwrites.</param>
/// <param name="LargeConditionalWriteHonoured">The same for a multi-request write; null when the store has none.</param>
/// <param name="WriteMs">Time of the first small write.</param>
/// <param name="RoundTripMs">Median time of five metadata requests (GetInfo): the round trip.</param>
/// <param name="WriteMibPerSecond">Throughput of a 16 MiB write.</param>
/// <param name="ReadMibPerSecond">Throughput of a 16 MiB read.</param>
/// <param name="DeleteAllowed">The probes could be deleted (expire needs it).</param>
public sealed record StoreCheckReport(
    string Store,
    bool ConditionalWriteHonoured,
    bool? LargeConditionalWriteHonoured,
    double WriteMs,
    double RoundTripMs,
    double WriteMibPerSecond,
    double ReadMibPerSecond,
    bool DeleteAllowed)
{
    /// <summary>The store's versioning, lock support and the lock in force; null for a store that keeps neither (local, memory).</summary>
    public RetentionReport? Retention { get; init; }

    /// <summary>The probes the store kept because they are locked (the lock in force applies to them too).</summary>
    public IReadOnlyList<string> LockedProbes { get; init; } = [];
}

/// <summary>
/// store-check: proves on the real store what CloudArchive relies on. Writes a probe, writes it again
/// expecting refusal, reads it back, measures round trip and 16 MiB throughput, and deletes the probes.
/// </summary>
public sealed class StoreCheck(IObjectStore store)
{
    private const int ThroughputBytes = 16 * 1024 * 1024;

    /// <summary>Runs the checks; the probes are deleted afterwards.</summary>
    public async Task<StoreCheckReport> RunAsync(CancellationToken ct)
    {
        var id = Manifest.StoreLayout.NewProbeKey("probe");
        var clock = Stopwatch.StartNew();
        var honoured = await ConditionalWriteHonouredAsync(id, ct).ConfigureAwait(false);
        var writeMs = clock.Elapsed.TotalMilliseconds;

        bool? largeHonoured = null;
        if (honoured && store.LargeWriteProbe is { } large)
            largeHonoured = await large.LargeWriteRefusedAsync(id + "-large", ct).ConfigureAwait(false);

        var trips = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            clock.Restart();
            await store.GetInfoAsync(id, ct).ConfigureAwait(false);
            trips.Add(clock.Elapsed.TotalMilliseconds);
        }
        trips.Sort();

        var payload = RandomNumberGenerator.GetBytes(ThroughputBytes);
        clock.Restart();
        await store.PutIfAbsentAsync(id + "-16m", new MemoryStream(payload), Sha(payload), ct).ConfigureAwait(false);
        var writeRate = ThroughputBytes / 1048576.0 / clock.Elapsed.TotalSeconds;
        clock.Restart();
        var back = await ReadAllAsync(id + "-16m", ct).ConfigureAwait(false);
        var readRate = ThroughputBytes / 1048576.0 / clock.Elapsed.TotalSeconds;
        if (!back.AsSpan().SequenceEqual(payload))
            throw new CloudArchiveException(ExitCode.Corrupt, $"{store.Description}: the 16 MiB probe read back differs from what was written");

        var retention = store.RetentionProbe is { } r ? await r.DescribeAsync(ct).ConfigureAwait(false) : null;
        var deleted = true;
        var locked = new List<string>();
        foreach (var key in new[] { id, id + "-16m", id + "-large" })
        {
            try
            {
                await store.DeleteAsync(key, ct).ConfigureAwait(false);
            }
            catch (ObjectLockedException e)
            {
                locked.Add(e.Until is { } until ? $"{key} (until {until.UtcDateTime:u})" : key);
            }
            catch (StoreUnavailableException e)
            {
                deleted = false;
                Log.Warn($"cannot delete probe {key}: {e.Message} (an object-locked store refuses deletes; expire will report the same)");
            }
        }
        return new StoreCheckReport(store.Description, honoured, largeHonoured, writeMs, trips[trips.Count / 2], writeRate, readRate, deleted)
        {
            Retention = retention, LockedProbes = locked,
        };
    }

    /// <summary>
    /// Writes a new probe at <paramref name="id"/> and then other bytes at the same key: true when the second write was
    /// refused and the first bytes are what the store holds. The probe is left for the caller to delete.
    /// </summary>
    public async Task<bool> ConditionalWriteHonouredAsync(string id, CancellationToken ct)
    {
        var probe = RandomNumberGenerator.GetBytes(1024);
        var first = await store.PutIfAbsentAsync(id, new MemoryStream(probe), Sha(probe), ct).ConfigureAwait(false);
        if (first is not PutOutcome.Created)
            throw new CloudArchiveException(ExitCode.StoreUnsafe, $"{store.Description}: a brand-new probe key {id} was reported as existing");
        var other = RandomNumberGenerator.GetBytes(1024);
        var second = await store.PutIfAbsentAsync(id, new MemoryStream(other), Sha(other), ct).ConfigureAwait(false);
        var stored = await ReadAllAsync(id, ct).ConfigureAwait(false);
        return second is PutOutcome.AlreadyExists && stored.AsSpan().SequenceEqual(probe);
    }

    private async Task<byte[]> ReadAllAsync(string key, CancellationToken ct)
    {
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false)
            ?? throw new CloudArchiveException(ExitCode.StoreUnsafe, $"{store.Description}: probe {key} was written but cannot be read back");
        using var buffer = new MemoryStream();
        await obj.Content.CopyToAsync(buffer, ct).ConfigureAwait(false);
        return buffer.ToArray();
    }

    private static ObjectMetadata Sha(byte[] data) => new() { [ObjectMetadata.Sha256] = Convert.ToHexStringLower(SHA256.HashData(data)) };
}
