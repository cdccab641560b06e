using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Manifest;

/// <summary>Reading one manifest record: absent is the caller's "no such ..." (exit 1), a record that does not parse is corrupt (exit 5).</summary>
public static class ManifestRecords
{
    /// <summary>The record at <paramref name="key"/>; <paramref name="kind"/> names it in messages ("backup", "dump", "drill").</summary>
    /// <param name="hint">Appended to "no KIND ID in STORE", e.g. " (see dump-list)".</param>
    public static async Task<T> ReadAsync<T>(IObjectStore store, string key, JsonTypeInfo<T> type, string kind, string id, CancellationToken ct,
        string hint = "")
    {
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false)
            ?? throw new CloudArchiveException(ExitCode.NotFound, $"no {kind} {id} in {store.Description}{hint}");
        try
        {
            return await JsonSerializer.DeserializeAsync(obj.Content, type, ct).ConfigureAwait(false) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new CorruptObjectException($"{kind} record {key} in {store.Description} does not parse: {e.Message}", e);
        }
    }
}
