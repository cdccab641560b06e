namespace CloudArchive.Core.Storage;

/// <summary>
/// The one storage abstraction. Objects are immutable: <see cref="PutIfAbsentAsync"/> is the only write, and it asks
/// the store not to replace an existing object. A store that honours the condition never does; one that ignores it
/// (some S3-compatible servers on multipart completion) is found by store-check and by wal-push's read-back, and the
/// objects written in several requests go under keys no other writer chooses. Deletion exists only for retention.
/// </summary>
public interface IObjectStore
{
    /// <summary>The store's location for messages, with any secret removed.</summary>
    string Description { get; }

    /// <summary>
    /// How store-check proves the write condition on multi-request writes (multipart, block lists); null for a store
    /// whose every write is one atomic step (a local directory, memory).
    /// </summary>
    ILargeWriteConditionProbe? LargeWriteProbe { get; }

    /// <summary>
    /// The two stores read as one, when this is <see cref="FallbackObjectStore"/> (--fallback-store): a reader that finds an
    /// object corrupt sets it aside there and reads it again, from the second store. Null for a single store.
    /// </summary>
    FallbackObjectStore? Fallback => null;

    /// <summary>What store-check reports of versions and locks, for a store that can keep or hold them (S3, Azure); null otherwise.</summary>
    IRetentionProbe? RetentionProbe => null;

    /// <summary>
    /// The two stores archiving writes to, when this store writes through <see cref="MirroredObjectStore"/> (--store-2): its
    /// backlog and catch-up. Null for a single store.
    /// </summary>
    MirroredObjectStore? Mirror => null;

    /// <summary>
    /// Creates <paramref name="key"/> with the content and metadata unless it exists, using the backend's own
    /// atomic primitive (never check-then-write). Returns when the object is durable.
    /// </summary>
    Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct);

    /// <summary>Opens an object for reading; null when the key does not exist.</summary>
    Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct);

    /// <summary>The object's size and metadata without its content; null when absent.</summary>
    Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct);

    /// <summary>Every key starting with <paramref name="prefix"/>, in ordinal order, pages fetched lazily.</summary>
    IAsyncEnumerable<ListedObject> ListAsync(string prefix, CancellationToken ct);

    /// <summary>Removes an object (retention only); false when it did not exist.</summary>
    Task<bool> DeleteAsync(string key, CancellationToken ct);

    /// <summary>
    /// Removes what writes interrupted before <paramref name="before"/> left behind and nothing ever lists: a local
    /// store's hidden temp files, S3's unfinished multipart uploads (Azure discards uncommitted blocks itself after
    /// 7 days). Returns their names; with <paramref name="dryRun"/> it only names them.
    /// </summary>
    Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct);
}

/// <summary>User metadata stored with an object by the request that creates it (keys: lower-case letters and digits).</summary>
public sealed class ObjectMetadata : Dictionary<string, string>
{
    /// <summary>Empty metadata.</summary>
    public ObjectMetadata() : base(StringComparer.Ordinal) { }
    /// <summary>Metadata with <paramref name="items"/>.</summary>
    public ObjectMetadata(IEnumerable<KeyValuePair<string, string>> items) : base(items, StringComparer.Ordinal) { }

    /// <summary>The value of <paramref name="name"/>; null when absent.</summary>
    public string? Get(string name) => TryGetValue(name, out var v) ? v : null;

    /// <summary>The SHA-256 of the object's content (before compression), hex: what every read checks.</summary>
    public const string Sha256 = "sha256";

    /// <summary>The content's size in bytes (a WAL file's).</summary>
    public const string Size = "size";

    /// <summary>How the content is compressed (zstd).</summary>
    public const string Compression = "compression";

    /// <summary>A WAL segment's size, from its page header.</summary>
    public const string SegmentSize = "segmentsize";

    /// <summary>A WAL segment's database system identifier, from its page header.</summary>
    public const string SystemId = "systemid";
}

/// <summary>An object's size and metadata.</summary>
/// <param name="Key">The object's key.</param>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Metadata">The user metadata it was written with.</param>
public sealed record ObjectInfo(string Key, long Size, ObjectMetadata Metadata)
{
    /// <summary>The retain-until date of the object's retention lock (S3 Object Lock, Azure immutability); null: not locked.</summary>
    public DateTimeOffset? LockedUntil { get; init; }
}

/// <summary>An object as a listing names it.</summary>
/// <param name="Key">The object's key.</param>
/// <param name="Size">Its size in bytes.</param>
public sealed record ListedObject(string Key, long Size);

/// <summary>An open object; dispose it to release the connection or file.</summary>
public sealed class StoredObject(ObjectInfo info, Stream content) : IAsyncDisposable
{
    /// <summary>The object's key, size and metadata.</summary>
    public ObjectInfo Info { get; } = info;
    /// <summary>The object's bytes, read once from the start.</summary>
    public Stream Content { get; } = content;
    /// <summary>
    /// True when <see cref="Content"/> is authenticated as it is read (an encrypted object: every chunk's tag and the
    /// final chunk are checked, and the header binds the content and its metadata to the object's name), so a checksum
    /// over the same bytes proves nothing more; false for a plain object, whose recorded SHA-256 is the proof.
    /// </summary>
    public bool Authenticated { get; init; }
    /// <inheritdoc />
    public ValueTask DisposeAsync() => Content.DisposeAsync();
}

/// <summary>What a conditional put did: a value, not an exception, so the caller decides what "exists" means.</summary>
public abstract record PutOutcome
{
    private PutOutcome() { }
    /// <summary>The object was written.</summary>
    public sealed record Created : PutOutcome;
    /// <summary>An object with the key existed; nothing was written.</summary>
    /// <param name="Existing">The existing object's size and metadata, to compare with what was offered.</param>
    public sealed record AlreadyExists(ObjectInfo Existing) : PutOutcome;
}

