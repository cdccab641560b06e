using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Crypto;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>Client-side encryption over the in-memory store: what the store holds, what it gives back, what it refuses.</summary>
public sealed class EncryptionTests : IDisposable
{
    private static readonly EncryptionKey A = new(RandomNumberGenerator.GetBytes(32));
    private static readonly EncryptionKey B = new(RandomNumberGenerator.GetBytes(32));
    private static readonly RetryPolicy Quick = new(TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5));
    private readonly string _dir = Directory.CreateTempSubdirectory("encryption-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ObjectMetadata Meta(byte[] content) => new() { ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(content)), ["size"] = content.Length.ToString() };

    private static async Task<byte[]> ReadAllAsync(IObjectStore store, string key)
    {
        await using var obj = await store.OpenReadAsync(key, CancellationToken.None) ?? throw new InvalidOperationException(key + " missing");
        using var buffer = new MemoryStream();
        await obj.Content.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(ObjectEnvelope.ChunkSize)]
    [InlineData(ObjectEnvelope.ChunkSize + 1)]
    [InlineData(3 * ObjectEnvelope.ChunkSize + 17)]
    public async Task ContentAndMetadataComeBackAndTheStoreHoldsNeitherInTheClear(int size)
    {
        var memory = new InMemoryObjectStore();
        var store = new EncryptedObjectStore(memory, new KeyRing([A]));
        var marker = Encoding.ASCII.GetBytes("MARKER-7f3a");
        var content = new byte[size];
        for (var i = 0; i + marker.Length <= size; i += 1000) marker.CopyTo(content, i);

        Assert.IsType<PutOutcome.Created>(await store.PutIfAbsentAsync("wal/x", new MemoryStream(content), Meta(content), CancellationToken.None));

        Assert.Equal(content, await ReadAllAsync(store, "wal/x"));
        var info = await new EncryptedObjectStore(memory, new KeyRing([A])).GetInfoAsync("wal/x", CancellationToken.None);
        Assert.Equal(Meta(content)["sha256"], info!.Metadata.Get("sha256"));
        Assert.Equal(A.Id, info.Metadata.Get(ObjectEnvelope.KeyIdMetadata));
        var raw = await ReadAllAsync(memory, "wal/x");
        Assert.True(raw.AsSpan().IndexOf(marker) < 0, "the plaintext is in the stored object");
        var clear = (await memory.GetInfoAsync("wal/x", CancellationToken.None))!.Metadata;
        Assert.Equal([ObjectEnvelope.KeyIdMetadata, ObjectEnvelope.MacMetadata], clear.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task TheLengthIsWhatIsReadAndARewindStartsOverWithANewDataKey()
    {
        var content = RandomNumberGenerator.GetBytes(2 * ObjectEnvelope.ChunkSize + 5);
        using var source = new MemoryStream(content);
        await using var encrypting = new EncryptingStream(source, "k", Meta(content), A, archiveId: null);
        var length = encrypting.Length;
        using var first = new MemoryStream();
        await encrypting.CopyToAsync(first);
        encrypting.Position = 0;
        using var second = new MemoryStream();
        await encrypting.CopyToAsync(second);

        Assert.Equal(length, first.Length);
        Assert.Equal(length, second.Length);
        Assert.NotEqual(first.ToArray(), second.ToArray());
        foreach (var ciphertext in new[] { first, second })
        {
            ciphertext.Position = 0;
            var (_, plain) = await DecryptingStream.OpenAsync(ciphertext, "k", new KeyRing([A]), null, "k", CancellationToken.None);
            using var back = new MemoryStream();
            await plain.CopyToAsync(back);
            Assert.Equal(content, back.ToArray());
        }
    }

    public static TheoryData<string> Tamperings => ["flip-header", "flip-chunk", "truncate-at-chunk", "truncate-inside", "append", "reorder", "other-name"];

    [Theory]
    [MemberData(nameof(Tamperings))]
    public async Task AnAlteredObjectIsCorruptNeverPlaintext(string how)
    {
        var memory = new InMemoryObjectStore { IgnoresWriteCondition = true };
        var store = new EncryptedObjectStore(memory, new KeyRing([A]));
        var content = RandomNumberGenerator.GetBytes(3 * ObjectEnvelope.ChunkSize);
        await store.PutIfAbsentAsync("wal/a", new MemoryStream(content), Meta(content), CancellationToken.None);
        var raw = await ReadAllAsync(memory, "wal/a");
        var header = raw.Length - content.Length - 3 * ObjectEnvelope.TagSize;
        var chunk = ObjectEnvelope.ChunkSize + ObjectEnvelope.TagSize;
        var key = "wal/a";
        byte[] planted = how switch
        {
            "flip-header" => Flip(raw, 40),
            "flip-chunk" => Flip(raw, header + chunk + 100),
            "truncate-at-chunk" => raw[..(header + 2 * chunk)],
            "truncate-inside" => raw[..(raw.Length - 1)],
            "append" => [.. raw, 0],
            "reorder" => [.. raw[..header], .. raw.AsSpan(header + chunk, chunk), .. raw.AsSpan(header, chunk), .. raw[(header + 2 * chunk)..]],
            "other-name" => raw,
            _ => throw new ArgumentException(how),
        };
        if (how == "other-name") key = "wal/b";
        await memory.PutIfAbsentAsync(key, new MemoryStream(planted), (await memory.GetInfoAsync("wal/a", CancellationToken.None))!.Metadata, CancellationToken.None);

        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(store, key));
        Assert.Equal(ExitCode.Corrupt, e.ExitCode);
    }

    /// <summary>Copies an object as it is stored (ciphertext and clear metadata) from one store into another, under the same name.</summary>
    private static async Task CopyRawAsync(IObjectStore from, IObjectStore to, string key)
    {
        var raw = await ReadAllAsync(from, key);
        var metadata = (await from.GetInfoAsync(key, CancellationToken.None))!.Metadata;
        await to.DeleteAsync(key, CancellationToken.None);
        await to.PutIfAbsentAsync(key, new MemoryStream(raw), metadata, CancellationToken.None);
    }

    [Fact]
    public async Task AnObjectCopiedInFromAnotherStoreUnderTheSameKeyIsCorruptNamingBothArchives()
    {
        var near = new InMemoryObjectStore();
        var far = new InMemoryObjectStore();
        var ours = RandomNumberGenerator.GetBytes(1000);
        var theirs = RandomNumberGenerator.GetBytes(1000);
        await new EncryptedObjectStore(near, new KeyRing([A])).PutIfAbsentAsync("dumps/x/dump.zst", new MemoryStream(ours), Meta(ours), CancellationToken.None);
        await new EncryptedObjectStore(far, new KeyRing([A])).PutIfAbsentAsync("dumps/x/dump.zst", new MemoryStream(theirs), Meta(theirs), CancellationToken.None);
        var nearId = await ArchiveIdOfAsync(near);
        var farId = await ArchiveIdOfAsync(far);
        Assert.True(StoreMarker.IsArchiveId(nearId) && StoreMarker.IsArchiveId(farId) && nearId != farId, "each new store gets an archive id of its own");
        Assert.Equal(ours, await ReadAllAsync(new EncryptedObjectStore(near, new KeyRing([A])), "dumps/x/dump.zst"));

        await CopyRawAsync(far, near, "dumps/x/dump.zst");

        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(new EncryptedObjectStore(near, new KeyRing([A])), "dumps/x/dump.zst"));
        Assert.Contains($"belongs to archive {farId}, not to this store's archive {nearId}", e.Message);

        // The same ciphertext with the archive id in its header changed to ours: the id is authenticated with the data key.
        var raw = await ReadAllAsync(far, "dumps/x/dump.zst");
        Convert.FromHexString(nearId!).CopyTo(raw, 24);
        await near.DeleteAsync("dumps/x/dump.zst", CancellationToken.None);
        await near.PutIfAbsentAsync("dumps/x/dump.zst", new MemoryStream(raw), (await far.GetInfoAsync("dumps/x/dump.zst", CancellationToken.None))!.Metadata, CancellationToken.None);
        var forged = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(new EncryptedObjectStore(near, new KeyRing([A])), "dumps/x/dump.zst"));
        Assert.Contains("does not open", forged.Message);
    }

    [Fact]
    public async Task WithoutItsMarkerOrWithAnotherOneAStoresObjectsAreCorruptNotReadAsAnotherArchive()
    {
        var memory = new InMemoryObjectStore { IgnoresWriteCondition = true };
        var content = RandomNumberGenerator.GetBytes(500);
        await new EncryptedObjectStore(memory, new KeyRing([A])).PutIfAbsentAsync("wal/a", new MemoryStream(content), Meta(content), CancellationToken.None);

        await memory.DeleteAsync(StoreLayout.StoreMarkerKey, CancellationToken.None);
        var removed = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(new EncryptedObjectStore(memory, new KeyRing([A])), "wal/a"));
        Assert.Contains("names no archive id: was the marker removed or replaced?", removed.Message);

        await memory.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, new MemoryStream(StoreMarker.New().Encode()), new ObjectMetadata(), CancellationToken.None);
        var replaced = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(new EncryptedObjectStore(memory, new KeyRing([A])), "wal/a"));
        Assert.Contains("copied in from another store", replaced.Message);

        await memory.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, new MemoryStream("{\"archive\":\"../../x\"}"u8.ToArray()), new ObjectMetadata(), CancellationToken.None);
        var altered = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(new EncryptedObjectStore(memory, new KeyRing([A])), "wal/a"));
        Assert.Contains("the marker was altered", altered.Message);
    }

    [Fact]
    public async Task AReaderThatFoundNoMarkerReadsAnObjectWrittenAfterAnotherProcessMarkedTheStore()
    {
        var memory = new InMemoryObjectStore();
        // backup-push reads first (no marker yet: a new bucket), while archive_command's first encrypted write marks the store.
        var reader = new EncryptedObjectStore(memory, new KeyRing([A]));
        Assert.Null(await reader.OpenReadAsync("manifest/wal/00000001/none.json", CancellationToken.None));
        var bytes = "a record"u8.ToArray();
        await new EncryptedObjectStore(memory, new KeyRing([A])).PutIfAbsentAsync("manifest/wal/00000001/x.json", new MemoryStream(bytes), Meta(bytes),
            CancellationToken.None);

        Assert.Equal(bytes, await ReadAllAsync(reader, "manifest/wal/00000001/x.json"));
    }

    [Fact]
    public async Task ALostResponseToTheFirstEncryptedWriteMarkingANewStoreStillBindsTheObjectToItsArchive()
    {
        var memory = new InMemoryObjectStore();
        var store = new RetryingObjectStore(new EncryptedObjectStore(memory, new KeyRing([A])), Quick);
        var content = RandomNumberGenerator.GetBytes(500);
        memory.LoseNextResponses(1);

        await store.PutIfAbsentAsync("wal/a", new MemoryStream(content), Meta(content), CancellationToken.None);

        var id = await ArchiveIdOfAsync(memory);
        Assert.True(StoreMarker.IsArchiveId(id), "the marker holds an archive id");
        Assert.Equal(content, await ReadAllAsync(new EncryptedObjectStore(memory, new KeyRing([A])), "wal/a"));
        var raw = await ReadAllAsync(memory, "wal/a");
        Assert.Equal(id, Convert.ToHexStringLower(raw.AsSpan(24, 16)));
    }

    [Fact]
    public async Task AnOlderStoreKeepsNameBoundObjectsWhichAStoreWithAnArchiveIdRefuses()
    {
        // An older store: a manifest, no marker. Its new objects stay as its old ones were (bound to their names), and read back.
        var older = new InMemoryObjectStore();
        await older.PutIfAbsentAsync(StoreLayout.ManifestWalPrefix + "old.json", new MemoryStream([1]), new ObjectMetadata(), CancellationToken.None);
        var content = RandomNumberGenerator.GetBytes(500);
        await new EncryptedObjectStore(older, new KeyRing([A])).PutIfAbsentAsync("wal/a", new MemoryStream(content), Meta(content), CancellationToken.None);
        Assert.Null(await older.GetInfoAsync(StoreLayout.StoreMarkerKey, CancellationToken.None));
        Assert.Equal(content, await ReadAllAsync(new EncryptedObjectStore(older, new KeyRing([A])), "wal/a"));

        // The same object planted into a store that was made with an archive id does not open there.
        var store = new InMemoryObjectStore();
        await store.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, new MemoryStream(StoreMarker.New().Encode()), new ObjectMetadata(), CancellationToken.None);
        await CopyRawAsync(older, store, "wal/a");
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(new EncryptedObjectStore(store, new KeyRing([A])), "wal/a"));
        Assert.Contains("is bound to no archive, but this store was made with archive id", e.Message);
    }

    private static byte[] Flip(byte[] data, int at)
    {
        var copy = (byte[])data.Clone();
        copy[at] ^= 0x01;
        return copy;
    }

    [Fact]
    public async Task AMissingOrUnknownKeyIsAOneLineConfigurationErrorNamingTheKey()
    {
        var memory = new InMemoryObjectStore();
        var content = RandomNumberGenerator.GetBytes(1000);
        await new EncryptedObjectStore(memory, new KeyRing([A])).PutIfAbsentAsync("wal/a", new MemoryStream(content), Meta(content), CancellationToken.None);

        var none = await Assert.ThrowsAsync<CloudArchiveException>(() => ReadAllAsync(new EncryptedObjectStore(memory, KeyRing.None), "wal/a"));
        Assert.Equal(ExitCode.Usage, none.ExitCode);
        Assert.Contains($"encrypted (key {A.Id}) and no encryption key is configured", none.Message);

        var other = await Assert.ThrowsAsync<CloudArchiveException>(() => ReadAllAsync(new EncryptedObjectStore(memory, new KeyRing([B])), "wal/a"));
        Assert.Equal(ExitCode.Usage, other.ExitCode);
        Assert.Contains($"key {A.Id}, which is not among the configured keys ({B.Id})", other.Message);
    }

    [Fact]
    public async Task RotationWritesWithTheFirstKeyAndReadsWithAnyAndPlainObjectsStayReadable()
    {
        var memory = new InMemoryObjectStore();
        var plain = RandomNumberGenerator.GetBytes(500);
        var old = RandomNumberGenerator.GetBytes(500);
        var fresh = RandomNumberGenerator.GetBytes(500);
        await new EncryptedObjectStore(memory, KeyRing.None).PutIfAbsentAsync("plain", new MemoryStream(plain), Meta(plain), CancellationToken.None);
        await new EncryptedObjectStore(memory, new KeyRing([A])).PutIfAbsentAsync("old", new MemoryStream(old), Meta(old), CancellationToken.None);
        var rotated = new EncryptedObjectStore(memory, new KeyRing([B, A]));
        await rotated.PutIfAbsentAsync("fresh", new MemoryStream(fresh), Meta(fresh), CancellationToken.None);

        Assert.Equal(plain, await ReadAllAsync(rotated, "plain"));
        Assert.Equal(old, await ReadAllAsync(rotated, "old"));
        Assert.Equal(fresh, await ReadAllAsync(rotated, "fresh"));
        Assert.Equal(B.Id, (await memory.GetInfoAsync("fresh", CancellationToken.None))!.Metadata.Get(ObjectEnvelope.KeyIdMetadata));
        Assert.Equal(A.Id, (await memory.GetInfoAsync("old", CancellationToken.None))!.Metadata.Get(ObjectEnvelope.KeyIdMetadata));
    }

    [Fact]
    public async Task WithEncryptionRequiredAPlainObjectIsCorruptButTheMarkerIsRead()
    {
        var memory = new InMemoryObjectStore();
        var plain = RandomNumberGenerator.GetBytes(500);
        await memory.PutIfAbsentAsync("wal/planted", new MemoryStream(plain), Meta(plain), CancellationToken.None);
        await memory.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, new MemoryStream(plain), new ObjectMetadata(), CancellationToken.None);
        var required = new EncryptedObjectStore(memory, new KeyRing([A]) { Required = true });

        Assert.Equal(plain, await ReadAllAsync(new EncryptedObjectStore(memory, new KeyRing([A])), "wal/planted"));
        var read = await Assert.ThrowsAsync<CorruptObjectException>(() => ReadAllAsync(required, "wal/planted"));
        Assert.Contains("not encrypted, and encryption is required", read.Message);
        await Assert.ThrowsAsync<CorruptObjectException>(() => required.GetInfoAsync("wal/planted", CancellationToken.None));
        Assert.Equal(plain, await ReadAllAsync(required, StoreLayout.StoreMarkerKey));
    }

    /// <summary>A 1 MiB segment whose header matches its name; different seeds, different content.</summary>
    private string Segment(string name, int seed)
    {
        var bytes = new byte[1 << 20];
        new Random(seed).NextBytes(bytes.AsSpan(WalSegmentHeader.Size, 4096));
        WalSegmentHeader.For(WalFileName.Parse(name), 42, 1 << 20).WriteTo(bytes);
        var path = Path.Combine(Directory.CreateDirectory(Path.Combine(_dir, $"seed-{seed}")).FullName, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static TheoryData<string> SegmentTamperings => ["flip-chunk", "flip-last", "truncate-at-chunk", "truncate-inside", "reorder"];

    /// <summary>
    /// A fetch of an encrypted segment skips the SHA-256 pass (the chunks' tags prove the same), so the tags alone must
    /// stop every alteration: nothing at the destination, no temp file beside it.
    /// </summary>
    [Theory]
    [MemberData(nameof(SegmentTamperings))]
    public async Task AnAlteredEncryptedSegmentIsNeverHandedToPostgres(string how)
    {
        var memory = new InMemoryObjectStore { IgnoresWriteCondition = true };
        const string name = "000000010000000000000007";
        var segment = Segment(name, 3);
        var noisy = await File.ReadAllBytesAsync(segment);
        new Random(9).NextBytes(noisy.AsSpan(WalSegmentHeader.Size)); // incompressible: the object spans several chunks
        await File.WriteAllBytesAsync(segment, noisy);
        await new WalArchive(new EncryptedObjectStore(memory, new KeyRing([A])), 1).PushAsync(segment, CancellationToken.None);
        var key = StoreLayout.WalObjectKey(WalFileName.Parse(name));
        var raw = await ReadAllAsync(memory, key);
        var chunk = ObjectEnvelope.ChunkSize + ObjectEnvelope.TagSize;
        var header = await HeaderLengthAsync(raw, key, await ArchiveIdOfAsync(memory));
        Assert.True(raw.Length > header + 3 * chunk, "the object spans several chunks");
        byte[] planted = how switch
        {
            "flip-chunk" => Flip(raw, header + chunk + 100),
            "flip-last" => Flip(raw, raw.Length - 1),
            "truncate-at-chunk" => raw[..(header + 2 * chunk)],
            "truncate-inside" => raw[..(raw.Length - 1)],
            "reorder" => [.. raw[..header], .. raw.AsSpan(header + chunk, chunk), .. raw.AsSpan(header, chunk), .. raw[(header + 2 * chunk)..]],
            _ => throw new ArgumentException(how),
        };
        var metadata = (await memory.GetInfoAsync(key, CancellationToken.None))!.Metadata;
        await memory.PutIfAbsentAsync(key, new MemoryStream(planted), metadata, CancellationToken.None);

        var destination = Path.Combine(Directory.CreateDirectory(Path.Combine(_dir, "pg_wal")).FullName, "RECOVERYXLOG");
        var wal = new WalArchive(new EncryptedObjectStore(memory, new KeyRing([A])), 1);
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => wal.FetchAsync(name, destination, CancellationToken.None));
        Assert.Equal(ExitCode.Corrupt, e.ExitCode);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(destination)!));
    }

    /// <summary>Where the first encrypted chunk starts: the header is read exactly, so its reader stops there.</summary>
    private static async Task<int> HeaderLengthAsync(byte[] raw, string key, string? archiveId)
    {
        using var input = new MemoryStream(raw);
        await ObjectEnvelope.OpenHeaderAsync(input, key, new KeyRing([A]), archiveId, key, CancellationToken.None);
        return (int)input.Position;
    }

    /// <summary>The archive id in a store's marker (the first encrypted write into a new store made it).</summary>
    private static async Task<string?> ArchiveIdOfAsync(IObjectStore store)
    {
        await using var marker = await store.OpenReadAsync(StoreLayout.StoreMarkerKey, CancellationToken.None);
        return marker is null ? null : StoreMarker.Parse(marker.Content, "marker").ArchiveId;
    }

    [Fact]
    public async Task AnIdenticalRePushSucceedsAlsoAfterALostResponseAndDifferentContentIsRefused()
    {
        var memory = new InMemoryObjectStore();
        await memory.PutIfAbsentAsync(StoreLayout.StoreMarkerKey, new MemoryStream(StoreMarker.New().Encode()), new ObjectMetadata(), CancellationToken.None);
        var wal = new WalArchive(new RetryingObjectStore(new EncryptedObjectStore(memory, new KeyRing([A])), Quick), 1);
        const string name = "000000010000000000000003";
        memory.LoseNextResponses(1);

        Assert.True((await wal.PushAsync(Segment(name, 1), CancellationToken.None)).AlreadyArchived, "the retry after the lost response found its own object");
        // Another process, same key, same content: identical by its MAC.
        var again = new WalArchive(new EncryptedObjectStore(memory, new KeyRing([A])), 1);
        Assert.True((await again.PushAsync(Segment(name, 1), CancellationToken.None)).AlreadyArchived);
        var e = await Assert.ThrowsAsync<CloudArchiveException>(() => again.PushAsync(Segment(name, 2), CancellationToken.None));
        Assert.Equal(ExitCode.RefusedOverwrite, e.ExitCode);

        var restored = Path.Combine(_dir, "restored");
        Assert.True((await again.FetchAsync(name, restored, CancellationToken.None)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(Segment(name, 1)), await File.ReadAllBytesAsync(restored));
        Assert.Contains(StoreLayout.WalRecordKey(WalFileName.Parse(name)), memory.Keys);
    }
}
