using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Operations;

/// <summary>The drill records in a store: appended once each, never replaced; the newest is what status and metrics show.</summary>
public sealed class DrillCatalog(IObjectStore store)
{
    /// <summary>
    /// A new drill id: UTC start time to the millisecond (so ids sort by time: two drills, one failing at its plan, can
    /// start within one second) and 8 random hex digits.
    /// </summary>
    public static string NewId(DateTimeOffset start) =>
        start.UtcDateTime.ToString("yyyyMMdd'T'HHmmssfff'Z'", CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));

    /// <summary>Appends <paramref name="record"/> (a conditional put: an existing record is never replaced).</summary>
    public async Task SaveAsync(DrillRecord record, CancellationToken ct)
    {
        using var content = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.DrillRecord));
        var outcome = await store.PutIfAbsentAsync(StoreLayout.DrillRecordKey(record.Id), content, new ObjectMetadata(), ct).ConfigureAwait(false);
        if (outcome is PutOutcome.AlreadyExists)
            throw new CloudArchiveException(ExitCode.RefusedOverwrite, $"drill record {record.Id} already exists in {store.Description}; not replaced");
    }

    /// <summary>
    /// The newest drill record whose times fit (its id's start time, not in the future, and the record's own times); null when
    /// none was recorded. A record that does not fit is a line in <paramref name="problems"/>, never the newest: a planted
    /// record with a later id must not hide a failing drill. A record that does not parse is corrupt (exit 5).
    /// </summary>
    public async Task<DrillRecord?> LatestAsync(CancellationToken ct, List<string>? problems = null)
    {
        var now = DateTimeOffset.UtcNow;
        var ids = new List<(DateTimeOffset Start, string Id)>();
        await foreach (var item in store.ListAsync(StoreLayout.ManifestDrillPrefix, ct).ConfigureAwait(false))
        {
            if (StoreLayout.DrillIdFromRecordKey(item.Key) is not { } id) continue;
            // Ids carry milliseconds since drills can start within one second; older ones, seconds.
            if (!ManifestRecords.IsValidId(id) || !DateTimeOffset.TryParseExact(id.Split('-')[0], ["yyyyMMdd'T'HHmmssfff'Z'", "yyyyMMdd'T'HHmmss'Z'"],
                    CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var start))
                problems?.Add($"drill record {item.Key} does not fit: its id is not one drill writes");
            else if (start > now + ManifestRecords.ClockSkew)
                problems?.Add($"drill record {item.Key} does not fit: its id says it started at {start:u}, in the future");
            else
                ids.Add((start, id));
        }
        foreach (var (start, id) in ids.OrderByDescending(i => i.Start).ThenByDescending(i => i.Id, StringComparer.Ordinal))
        {
            var record = await ReadAsync(id, ct).ConfigureAwait(false);
            var misfit = ManifestRecords.TimeProblem(record.StartTime, record.EndTime, now)
                ?? (Math.Abs((record.StartTime - start).TotalSeconds) > 1 ? $"it says it started at {record.StartTime:u}, its id {start:u}" : null);
            if (misfit is null) return record;
            problems?.Add($"drill record {StoreLayout.DrillRecordKey(id)} does not fit: {misfit}");
        }
        return null;
    }

    /// <summary>The record of drill <paramref name="id"/>, checked to be that drill's.</summary>
    public async Task<DrillRecord> ReadAsync(string id, CancellationToken ct)
    {
        var key = StoreLayout.DrillRecordKey(id);
        var record = await ManifestRecords.ReadAsync(store, key, ManifestJson.Default.DrillRecord, "drill", id, ct).ConfigureAwait(false);
        if (record.Id != id)
            throw new CorruptObjectException($"drill record {key} in {store.Description} is corrupt or forged: it names drill {record.Id}");
        return record;
    }
}
