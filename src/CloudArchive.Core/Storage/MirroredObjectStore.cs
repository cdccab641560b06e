using CloudArchive.Core.Crypto;
using CloudArchive.Core.Manifest;

namespace CloudArchive.Core.Storage;

/// <summary>How much archiving waits for the second store (--store-2-mode).</summary>
public enum SecondStoreMode
{
    /// <summary>A write succeeds only once both stores hold the object.</summary>
    Required,

    /// <summary>A second store that is down or refuses does not fail the write: the key goes to the backlog.</summary>
    BestEffort,
}

/// <summary>
/// Archiving to two stores (--store-2): every write goes to both, the same bytes (this sits below the encryption layer, so
/// both hold the same ciphertext, as copy would make them), each by its own conditional put under its own retries. The
/// first store first: the writer that creates the object there writes it to the second; a writer that finds the first
/// holding it already (a retried push, or another writer of the same file at the same moment) copies the first's object to
/// the second, checked as copy checks it, never its own. So two writers racing on one key cannot leave each store holding a
/// different one's bytes. Reads go to the first store: a writer reads back and builds on what it wrote there. An object the
/// second store already holds is compared (size and metadata, and the bytes of one as small as a record, as copy compares):
/// the same is no conflict, other content is one, never replaced. A write the second store missed (down, refused, or
/// holding other content) is added to the backlog, durably, before the write returns; then in <see cref="SecondStoreMode.Required"/>
/// mode it fails (exit 3 for other content, else 4), and in <see cref="SecondStoreMode.BestEffort"/> mode it is a loud
/// warning and the write succeeds. The second store's marker is made a copy of the first's (its archive id) before its
/// first object; the marker itself is each store's own.
/// </summary>
/// <param name="first">The first store's backend (under its retries).</param>
/// <param name="second">The second store's backend (under its retries).</param>
/// <param name="keys">The archive keys: what the catch-up and the copy of the first's object check encrypted objects with.</param>
public sealed class MirroredObjectStore(IObjectStore first, IObjectStore second, SecondStoreMode mode, KeyRing keys) : IObjectStore
{
    /// <summary>Objects up to this size are held in memory for the two puts; larger ones (backup bundles) in a private temporary file.</summary>
    private const int InMemory = 64 << 20;

    private Task? _marked;
    private long _downAt; // Environment.TickCount64 when the second store was last found unreachable here; 0: not

    /// <summary>The first store.</summary>
    public IObjectStore First => first;

    /// <summary>The second store.</summary>
    public IObjectStore Second => second;

    /// <summary>How much archiving waits for the second store.</summary>
    public SecondStoreMode Mode => mode;

    /// <summary>The archive keys (the catch-up's checks).</summary>
    public KeyRing Keys => keys;

    /// <summary>
    /// How long a best-effort second store found unreachable is left alone (its writes go straight to the backlog), so that an outage
    /// does not hold up every push for its retries; then a write or the catch-up tries it again. Its retry budget is a good value.
    /// </summary>
    public TimeSpan DownFor { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Whether a best-effort second store was found unreachable less than <see cref="DownFor"/> ago, here or in the spool.</summary>
    public bool RecentlyDown => mode == SecondStoreMode.BestEffort && (_downAt != 0 && Environment.TickCount64 - Interlocked.Read(ref _downAt) < (long)DownFor.TotalMilliseconds
        || Backlog?.RecentlyDown(DownFor) == true);

    /// <summary>Where missed keys are kept (the spool's); null when the command has no spool: a missed key is then only reported (and shown by status).</summary>
    public StoreBacklog? Backlog { get; set; }

    /// <inheritdoc />
    public string Description => first.Description;

    /// <inheritdoc />
    public ILargeWriteConditionProbe? LargeWriteProbe => first.LargeWriteProbe;

    /// <inheritdoc />
    public MirroredObjectStore? Mirror => this;

    /// <inheritdoc />
    public IRetentionProbe? RetentionProbe => first.RetentionProbe;

    /// <inheritdoc />
    public async Task<PutOutcome> PutIfAbsentAsync(string key, Stream content, ObjectMetadata metadata, CancellationToken ct)
    {
        // Each store has its own marker; the second's is made a copy of the first's before its first object.
        if (key == StoreLayout.StoreMarkerKey) return await first.PutIfAbsentAsync(key, content, metadata, ct).ConfigureAwait(false);
        if (RecentlyDown)
        {
            var alone = await first.PutIfAbsentAsync(key, content, metadata, ct).ConfigureAwait(false);
            Missed(key, $"{second.Description} was unreachable a moment ago", ExitCode.StoreUnavailable);
            return alone;
        }
        await using var shared = await SharedContent.ReadAsync(content, ct).ConfigureAwait(false);
        PutOutcome outcome;
        await using (var one = shared.Open())
            outcome = await first.PutIfAbsentAsync(key, one, metadata, ct).ConfigureAwait(false); // its failure is the answer
        var (failure, code) = await SecondAsync(() => outcome is PutOutcome.AlreadyExists
            ? CopyFirstsAsync(key, shared, metadata, ct)
            : PutSecondAsync(key, shared, metadata, ct), ct).ConfigureAwait(false);
        if (failure is not null) Missed(key, failure, code);
        return outcome;
    }

    /// <summary>A step on the second store: its failure and exit code, or none; never throws but for cancellation.</summary>
    private async Task<(string? Failure, ExitCode Code)> SecondAsync(Func<Task<(string?, ExitCode)>> step, CancellationToken ct)
    {
        try
        {
            await MarkedAsync(ct).ConfigureAwait(false);
            var result = await step().ConfigureAwait(false);
            if (result.Item1 is null) Interlocked.Exchange(ref _downAt, 0);
            return result;
        }
        catch (CloudArchiveException e)
        {
            if (e is StoreUnavailableException { Outage: true }) Interlocked.Exchange(ref _downAt, Environment.TickCount64);
            return (e.Message.ReplaceLineEndings(" "), e.ExitCode);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return (e.Message.ReplaceLineEndings(" "), ExitCode.StoreUnavailable);
        }
    }

    /// <summary>
    /// This write created the object in the first store: the same bytes to the second, read back. An object the second already
    /// holds must be the same (size and metadata, and every byte of one as small as a record): another writer that lost the
    /// first store to this one copies this one's object there, never its own.
    /// </summary>
    private async Task<(string?, ExitCode)> PutSecondAsync(string key, SharedContent shared, ObjectMetadata metadata, CancellationToken ct)
    {
        var written = new ObjectInfo(key, shared.Length, metadata);
        await using (var two = shared.Open())
        {
            if (await second.PutIfAbsentAsync(key, two, metadata, ct).ConfigureAwait(false) is PutOutcome.AlreadyExists exists)
                return Same(written, exists.Existing) && (shared.Length >= ManifestRecords.MaxSmallRecord || await SameBytesAsync(key, shared, ct).ConfigureAwait(false))
                    ? (null, ExitCode.Ok)
                    : ($"{second.Description} holds other content under {key} than {first.Description} ({exists.Existing.Size} bytes, not " +
                        $"{shared.Length}, or other metadata or bytes): left as it is", ExitCode.RefusedOverwrite);
        }
        // Read back, as wal-push does on the first: a store that ignores the write condition or truncates shows here.
        var stored = await second.GetInfoAsync(key, ct).ConfigureAwait(false);
        if (stored is null || !Same(written, stored))
            return ($"{second.Description} does not hold what was written under {key} ({stored?.Size.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "nothing"}" +
                $", {shared.Length} bytes written)", ExitCode.StoreUnsafe);
        return (null, ExitCode.Ok);
    }

    /// <summary>
    /// The first store held the key already: an earlier push of this file (PostgreSQL retrying one killed between the two stores),
    /// or another writer of it at the same moment (the async worker beside the agent, a standby's archive_command beside the
    /// primary's) that won the first store. Its object, not this write's, goes to the second, as copy copies it (checked as its
    /// readers check it, conditional put, read back), so both stores hold the same bytes (a record's time stamp, an encrypted
    /// object's ciphertext) whichever writer reaches the second store first. Whether the first's object is the content this write
    /// meant is its caller's judgement (a WAL file of other content is refused there). A first store's copy that fails its check
    /// is not copied: the second gets this write's own.
    /// </summary>
    private async Task<(string?, ExitCode)> CopyFirstsAsync(string key, SharedContent shared, ObjectMetadata metadata, CancellationToken ct)
    {
        var (report, settled) = await new Operations.ArchiveCopier(first, second, keys, jobs: 1).CopyKeysAsync([key], ct, withData: false).ConfigureAwait(false);
        if (settled.Contains(key)) return (null, ExitCode.Ok);
        if (report.Conflicts.FirstOrDefault() is { } conflict) return (conflict, ExitCode.RefusedOverwrite);
        // The first store's copy fails its check (a damaged object, not a writer's): this write's own is the good one the
        // second store should hold, for the readers that fall back to it.
        Log.Warn($"{first.Description} holds a copy of {key} that fails its check ({report.Corrupt.FirstOrDefault()}); {second.Description} " +
            "is given this write's own; verify shows the damaged one");
        return await PutSecondAsync(key, shared, metadata, ct).ConfigureAwait(false);
    }

    private async Task<bool> SameBytesAsync(string key, SharedContent shared, CancellationToken ct)
    {
        await using var theirs = await second.OpenReadAsync(key, ct).ConfigureAwait(false);
        if (theirs is null) return false;
        using var buffer = new MemoryStream();
        await theirs.Content.CopyToAsync(buffer, ct).ConfigureAwait(false);
        await using var ours = shared.Open();
        using var mine = new MemoryStream();
        await ours.CopyToAsync(mine, ct).ConfigureAwait(false);
        return buffer.GetBuffer().AsSpan(0, (int)buffer.Length).SequenceEqual(mine.GetBuffer().AsSpan(0, (int)mine.Length));
    }

    /// <summary>The second store's marker made a copy of the first's, once a process (again after a failure).</summary>
    private Task MarkedAsync(CancellationToken ct)
    {
        var marked = _marked;
        if (marked is null || marked.IsFaulted || marked.IsCanceled)
            _marked = marked = StoreSetup.MarkAsCopyOfAsync(first, second, ct);
        return marked;
    }

    private static bool Same(ObjectInfo a, ObjectInfo b) => a.Size == b.Size && SameMetadata(a, b);

    private static bool SameMetadata(ObjectInfo a, ObjectInfo b) => a.Metadata.Count == b.Metadata.Count && a.Metadata.All(m => b.Metadata.Get(m.Key) == m.Value);

    /// <summary>A key the second store missed: kept in the backlog, then a failure (required) or a warning (best-effort).</summary>
    private void Missed(string key, string why, ExitCode code)
    {
        Backlog?.Add(key);
        if (code == ExitCode.StoreUnavailable && Interlocked.Read(ref _downAt) != 0) Backlog?.MarkDown();
        var kept = Backlog is null ? "no backlog here: status shows what it lacks, copy fills it in" : $"kept in the backlog {Backlog.Directory}";
        if (mode == SecondStoreMode.Required)
            throw new CloudArchiveException(code, $"{key} is not in the second store: {why} ({kept}); the second store is required " +
                "(--store-2-mode required)");
        Log.Warn($"SECOND STORE BEHIND: {key} is not in {second.Description}: {why}; {kept}, copied when it answers");
    }

    /// <inheritdoc />
    public Task<StoredObject?> OpenReadAsync(string key, CancellationToken ct) => first.OpenReadAsync(key, ct);

    /// <inheritdoc />
    public Task<ObjectInfo?> GetInfoAsync(string key, CancellationToken ct) => first.GetInfoAsync(key, ct);

    /// <inheritdoc />
    public IAsyncEnumerable<ListedObject> ListAsync(string prefix, CancellationToken ct) => first.ListAsync(prefix, ct);

    /// <inheritdoc />
    /// <remarks>Retention works on each store by its own policy (expire); what deletes through the pair deletes in the first.</remarks>
    public Task<bool> DeleteAsync(string key, CancellationToken ct) => first.DeleteAsync(key, ct);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> RemoveAbandonedWritesAsync(DateTimeOffset before, bool dryRun, CancellationToken ct) =>
        first.RemoveAbandonedWritesAsync(before, dryRun, ct);

    /// <summary>The bytes of one write, read once and offered to both stores (each may read them again on a retry).</summary>
    private sealed class SharedContent : IAsyncDisposable
    {
        private byte[]? _bytes;
        private string? _path;
        private DirectoryInfo? _dir;

        public long Length { get; private set; }

        public static async Task<SharedContent> ReadAsync(Stream content, CancellationToken ct)
        {
            var shared = new SharedContent();
            var buffer = new MemoryStream();
            var chunk = new byte[1 << 17];
            int n;
            FileStream? file = null;
            try
            {
                while ((n = await content.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
                {
                    if (file is null && buffer.Length + n > InMemory)
                    {
                        shared._dir = Directory.CreateTempSubdirectory("cloudarchive-store2-");
                        shared._path = Path.Combine(shared._dir.FullName, "object");
                        file = new FileStream(shared._path, new FileStreamOptions
                        {
                            Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous,
                            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                        });
                        buffer.Position = 0;
                        await buffer.CopyToAsync(file, ct).ConfigureAwait(false);
                        buffer = new MemoryStream();
                    }
                    if (file is not null) await file.WriteAsync(chunk.AsMemory(0, n), ct).ConfigureAwait(false);
                    else buffer.Write(chunk, 0, n);
                    shared.Length += n;
                }
            }
            catch
            {
                if (file is not null) await file.DisposeAsync().ConfigureAwait(false);
                await shared.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            if (file is not null) await file.DisposeAsync().ConfigureAwait(false);
            else shared._bytes = buffer.ToArray();
            return shared;
        }

        public Stream Open() => _bytes is not null
            ? new MemoryStream(_bytes, writable: false)
            : new FileStream(_path!, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);

        public ValueTask DisposeAsync()
        {
            try
            {
                _dir?.Delete(recursive: true);
            }
            catch (IOException)
            {
                // The temporary directory's own clean-up takes what is left.
            }
            return ValueTask.CompletedTask;
        }
    }
}
