using System.IO.Hashing;
using CloudArchive.Native;

namespace CloudArchive.Core.Backup;

/// <summary>
/// Builds a file's block map from its bytes as they stream past, in any chunk sizes, appending each block's hash to
/// <paramref name="map"/> (a bundle's maps, or a scratch list).
/// </summary>
public sealed class BlockHasher(int blockSize, NativeByteList map)
{
    private readonly XxHash128 _hash = new();
    private readonly long _start = map.Length;
    private int _inBlock;

    /// <summary>Adds the next bytes of the file.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            var take = Math.Min(blockSize - _inBlock, data.Length);
            _hash.Append(data[..take]);
            _inBlock += take;
            data = data[take..];
            if (_inBlock == blockSize) Emit();
        }
    }

    /// <summary>Ends the map with the last (short) block's hash; returns the SHA-256 (hex) of this file's map, what a record stores.</summary>
    public string Finish()
    {
        if (_inBlock > 0) Emit();
        return BlockMap.Digest(map.Slice(_start, checked((int)(map.Length - _start))));
    }

    private void Emit()
    {
        Span<byte> hash = stackalloc byte[BlockMap.HashBytes];
        _hash.GetHashAndReset(hash);
        map.Append(hash);
        _inBlock = 0;
    }
}
