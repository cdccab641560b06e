using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>What the tests of copy and of reading from two stores share: segments to archive, and objects to read or damage in place.</summary>
internal static class TwoStores
{
    public const ulong SystemId = 7_301_234_567_890_123_456UL;

    /// <summary>A 1 MiB segment of <paramref name="name"/> under <paramref name="dir"/>; different seeds, different content.</summary>
    public static string Segment(string dir, string name, int seed)
    {
        var bytes = new byte[1 << 20];
        new Random(seed).NextBytes(bytes.AsSpan(WalSegmentHeader.Size, 4096));
        WalSegmentHeader.For(WalFileName.Parse(name), SystemId, 1 << 20).WriteTo(bytes);
        var path = Path.Combine(Directory.CreateDirectory(Path.Combine(dir, $"src-{seed}")).FullName, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static async Task<byte[]> BytesAsync(IObjectStore store, string key)
    {
        await using var obj = (await store.OpenReadAsync(key, CancellationToken.None))!;
        using var buffer = new MemoryStream();
        await obj.Content.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>One byte near the end of the object changed, its metadata kept: what a damaged disk or a hand in the bucket leaves.</summary>
    public static async Task CorruptAsync(InMemoryObjectStore store, string key)
    {
        var bytes = await BytesAsync(store, key);
        var metadata = (await store.GetInfoAsync(key, CancellationToken.None))!.Metadata;
        bytes[^5] ^= 0x40;
        await store.DeleteAsync(key, CancellationToken.None);
        await store.PutIfAbsentAsync(key, new MemoryStream(bytes), metadata, CancellationToken.None);
    }
}
