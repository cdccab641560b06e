using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Core.Manifest;

/// <summary>Reading one manifest record: absent is the caller's "no such ..." (exit 1), a record that does not parse is corrupt (exit 5).</summary>
public static class ManifestRecords
{
    /// <summary>The largest backup record read: about a million files' entries. A record is parsed whole, so a bigger one is corrupt.</summary>
    public const long MaxBackupRecord = 512L << 20;

    /// <summary>The largest dump, drill or WAL record read: real ones are a few KiB.</summary>
    public const long MaxSmallRecord = 1 << 20;

    /// <summary>How far a record's time may lie ahead of this host's clock (clock skew between hosts) and still fit.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Why a record's times do not fit (null when they do): an end in the future, a start after the end. A record that does not
    /// fit is shown as a problem, never taken for the newest, and never lets retention remove anything.
    /// </summary>
    public static string? TimeProblem(DateTimeOffset start, DateTimeOffset end, DateTimeOffset now) =>
        end > now + ClockSkew ? $"it ends at {end:u}, in the future"
        : start > end ? $"it starts at {start:u}, after its end {end:u}"
        : null;

    /// <summary>Whether <paramref name="id"/> can be a backup, dump or drill id: what CloudArchive writes (ASCII letters, digits, '-'), at most 64.</summary>
    public static bool IsValidId(string id) => id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');

    /// <summary>The record at <paramref name="key"/>; <paramref name="kind"/> names it in messages ("backup", "dump", "drill").</summary>
    /// <param name="hint">Appended to "no KIND ID in STORE", e.g. " (see dump-list)".</param>
    /// <param name="maxBytes">A record larger than this is corrupt (it is parsed whole).</param>
    /// <remarks>With two copies of the archive (--fallback-store), a record that does not read here is read from the second store.</remarks>
    public static Task<T> ReadAsync<T>(IObjectStore store, string key, JsonTypeInfo<T> type, string kind, string id, CancellationToken ct,
        string hint = "", long maxBytes = MaxSmallRecord) =>
        FallbackObjectStore.ReadCheckedAsync(store, key, () => ReadOnceAsync(store, key, type, kind, id, ct, hint, maxBytes));

    private static async Task<T> ReadOnceAsync<T>(IObjectStore store, string key, JsonTypeInfo<T> type, string kind, string id, CancellationToken ct,
        string hint, long maxBytes)
    {
        await using var obj = await store.OpenReadAsync(key, ct).ConfigureAwait(false)
            ?? throw new CloudArchiveException(ExitCode.NotFound, $"no {kind} {id} in {store.Description}{hint}");
        if (obj.Info.Size > maxBytes)
            throw new CorruptObjectException($"{kind} record {key} in {store.Description} is corrupt or forged: {obj.Info.Size} bytes, more than a record " +
                $"may hold ({maxBytes})");
        try
        {
            // Bounded whatever the store says the size is: a record is parsed whole.
            await using var bounded = new Native.BoundedReadStream(obj.Content, maxBytes, $"{kind} record {key} in {store.Description}");
            return await JsonSerializer.DeserializeAsync(bounded, type, ct).ConfigureAwait(false) ?? throw new JsonException("empty");
        }
        catch (InvalidDataException e)
        {
            throw new CorruptObjectException($"{kind} record {key} in {store.Description} is corrupt or forged: {e.Message}", e);
        }
        catch (JsonException e)
        {
            throw new CorruptObjectException($"{kind} record {key} in {store.Description} does not parse: {e.Message}", e);
        }
    }
}
