using System.Text;
using System.Text.Json;

namespace CloudArchive.IntegrationTests;

/// <summary>A local-directory store as the tests see it from outside: its directory, URL and file format.</summary>
public sealed class LocalStore
{
    private static readonly byte[] Magic = "CAOBJ1\n"u8.ToArray();

    public string Dir { get; }
    public string Url => "file://" + Dir;
    public Cli Cli { get; }

    /// <param name="create">Make the store, as an operator does before pointing archive_command at it: its directory, owned
    /// by postgres when the tests run as root, marked by store-init (a write never makes a store).</param>
    public LocalStore(string dir, bool create = true)
    {
        Dir = dir;
        Cli = Cli.ForLocalStore(dir);
        if (create) MakeDirectory(dir);
    }

    /// <summary>A new store (store-init) in a directory writable by the cluster owner (postgres) as well as by the tests.</summary>
    /// <param name="init">false: the directory alone, not yet a store.</param>
    public static void MakeDirectory(string dir, bool init = true)
    {
        TestEnv.CreateDirectory(dir);
        if (TestEnv.IsRoot) Proc.CheckAsync(Proc.RunAsync("chown", "postgres:postgres", dir)).GetAwaiter().GetResult();
        if (init) Proc.CheckAsync(Cli.ForLocalStore(dir).RunAsync("store-init")).GetAwaiter().GetResult();
    }

    /// <summary>A store in a new, empty directory of its own under a fresh work directory.</summary>
    public static LocalStore Create(string name, out string work)
    {
        work = TestEnv.NewWorkDir(name);
        return new LocalStore(Path.Combine(work, "store"));
    }

    public string ObjectPath(string walName) => Path.Combine(Dir, "wal", $"{TestSegments.TimelineOf(walName):X8}", walName + ".zst");
    public string RecordPath(string walName) => Path.Combine(Dir, "manifest", "wal", $"{TestSegments.TimelineOf(walName):X8}", walName + ".json");

    /// <summary>
    /// Every object file (not hidden, not the store's marker nor its first-cluster stamp, which say what the store is), relative
    /// to the store, sorted.
    /// </summary>
    public List<string> VisibleFiles() => !Directory.Exists(Dir) ? [] :
        Directory.EnumerateFiles(Dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Where(f => !Path.GetFileName(f).StartsWith('.') && Path.GetRelativePath(Dir, f) != CloudArchive.Core.Manifest.StoreLayout.StoreMarkerKey
                && CloudArchive.Core.Manifest.StoreLayout.FirstClusterFromStampKey(Path.GetRelativePath(Dir, f)) is null)
            .Select(f => Path.GetRelativePath(Dir, f))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>Every file whose name starts with a dot (temp files).</summary>
    public List<string> HiddenFiles() => !Directory.Exists(Dir) ? [] :
        Directory.EnumerateFiles(Dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Where(f => Path.GetFileName(f).StartsWith('.'))
            .Select(f => Path.GetRelativePath(Dir, f))
            .ToList();

    /// <summary>Parses one object file: "CAOBJ1\n", int32 LE length, JSON metadata, content. Fails the test if the file is not one.</summary>
    public static StoredFile Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length >= Magic.Length + 4 && bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic), $"{path} does not start with the object magic");
        var length = TestSegments.ReadInt32(bytes.AsSpan(Magic.Length));
        Assert.InRange(length, 2, bytes.Length - Magic.Length - 4);
        var headerLength = Magic.Length + 4 + length;
        var metadata = JsonSerializer.Deserialize<Dictionary<string, string>>(bytes.AsSpan(Magic.Length + 4, length))
            ?? throw new InvalidDataException(path + ": null metadata");
        return new StoredFile(bytes, headerLength, metadata);
    }

    /// <summary>
    /// Writes an object straight into the store directory in the store's own format, as anyone with write access
    /// to it could (no conditional put, no checks): the way the tests plant forged objects.
    /// </summary>
    public void Plant(string key, byte[] content, Dictionary<string, string> metadata)
    {
        var path = Path.Combine(Dir, key);
        TestEnv.CreateDirectory(Path.GetDirectoryName(path)!);
        var json = JsonSerializer.SerializeToUtf8Bytes(metadata);
        using var f = new FileStream(path, FileMode.CreateNew);
        f.Write(Magic);
        Span<byte> length = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, json.Length);
        f.Write(length);
        f.Write(json);
        f.Write(content);
    }

    /// <summary>The manifest record of a WAL file, parsed.</summary>
    public JsonElement Record(string walName)
    {
        var file = Read(RecordPath(walName));
        using var doc = JsonDocument.Parse(file.Content);
        return doc.RootElement.Clone();
    }
}

public sealed record StoredFile(byte[] Bytes, int HeaderLength, Dictionary<string, string> Metadata)
{
    public ReadOnlyMemory<byte> Content => Bytes.AsMemory(HeaderLength);
    public string ContentText => Encoding.UTF8.GetString(Content.Span);
}
