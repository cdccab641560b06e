using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace CloudArchive.Core.Manifest;

/// <summary>
/// What the store's marker (<see cref="StoreLayout.StoreMarkerKey"/>) says: that this is a CloudArchive store, the
/// archive id that store-init gave it (every encrypted object is bound to it, so an object copied in from another
/// store under the same key does not open), and for a local store the file system it was made on. Markers made
/// before archive ids (or by a local store adopting an older directory) carry none; their stores keep the older
/// envelope, bound to the object's name only.
/// </summary>
public sealed record StoreMarker(string? ArchiveId, string? FileSystem)
{
    /// <summary>More than any marker CloudArchive writes: a bigger one is not read.</summary>
    private const int MaxSize = 4096;

    /// <summary>A marker for a new store, with a fresh random archive id.</summary>
    public static StoreMarker New() => new(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), null);

    /// <summary>True for an archive id as store-init makes them: 32 lowercase hex digits.</summary>
    public static bool IsArchiveId(string? id) => id is { Length: 32 } && id.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    /// <summary>The marker's bytes.</summary>
    public byte[] Encode()
    {
        var sb = new StringBuilder($"{{\"store\":\"cloudarchive\",\"createdAt\":\"{DateTimeOffset.UtcNow:O}\"");
        if (ArchiveId is not null) sb.Append($",\"archive\":\"{ArchiveId}\"");
        if (FileSystem is not null) sb.Append($",\"fileSystem\":\"{FileSystem}\"");
        return Encoding.UTF8.GetBytes(sb.Append("}\n").ToString());
    }

    /// <summary>
    /// Reads a marker. One that is not a small JSON object says nothing (null fields); one whose archive id is not
    /// one store-init makes is corrupt: someone wrote it, and trusting it would bind new objects to their choice.
    /// </summary>
    public static StoreMarker Parse(Stream marker, string what)
    {
        var buffer = new byte[MaxSize + 1];
        var length = marker.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (length > MaxSize) return new StoreMarker(null, null);
        try
        {
            using var doc = JsonDocument.Parse(buffer.AsMemory(0, length));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return new StoreMarker(null, null);
            var archive = Text(doc.RootElement, "archive");
            if (archive is not null && !IsArchiveId(archive))
                throw new Pipeline.CorruptObjectException($"{what} names an archive id that store-init does not make: the marker was altered");
            return new StoreMarker(archive, Text(doc.RootElement, "fileSystem"));
        }
        catch (JsonException)
        {
            return new StoreMarker(null, null);
        }
    }

    private static string? Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
