using System.IO.Hashing;

namespace CloudArchive.Core.Backup;

/// <summary>Builds a file's block map from its bytes as they stream past, in any chunk sizes.</summary>
public sealed class BlockHasher(int blockSize) : IDisposable
{
    private readonly XxHash128 _hash = new();
    private readonly MemoryStream _map = new();
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

    /// <summary>The map, the last (short) block included.</summary>
    public byte[] Finish()
    {
        if (_inBlock > 0) Emit();
        return _map.ToArray();
    }

    private void Emit()
    {
        Span<byte> hash = stackalloc byte[BlockMap.HashBytes];
        _hash.GetHashAndReset(hash);
        _map.Write(hash);
        _inBlock = 0;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _map.Dispose();
    }
}
