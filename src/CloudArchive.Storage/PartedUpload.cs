using System.Buffers;
using System.Globalization;
using CloudArchive.Core;

namespace CloudArchive.Storage;

/// <summary>
/// A stream of unknown length uploaded in parts (S3 multipart parts, Azure staged blocks): each part is read straight
/// into the buffer its upload sends, one part is read while the one before it is on its way, so a stream holds two
/// parts in memory. Parts are 8 MiB for the first <c>partsPerStep</c>, then double every <c>partsPerStep</c> up to
/// 1 GiB: small objects (backup bundles) stay small in memory, and one object can grow to terabytes (a dump of a large
/// database) within the service's limit on the number of parts.
/// </summary>
public static class PartedUpload
{
    /// <summary>The size of the first parts; a stream that ends within the first goes in one request.</summary>
    public const int FirstPartSize = 8 * 1024 * 1024;

    /// <summary>The size of part <paramref name="number"/> (from 1).</summary>
    public static int PartSizeOf(int number, int partsPerStep) => FirstPartSize << Math.Min((number - 1) / partsPerStep, 7);

    /// <summary>The bytes <paramref name="maxParts"/> parts can hold.</summary>
    public static long Capacity(int maxParts, int partsPerStep)
    {
        long total = 0;
        for (var n = 1; n <= maxParts; n++) total += PartSizeOf(n, partsPerStep);
        return total;
    }

    /// <summary>
    /// Uploads <paramref name="first"/> (a full first part, rented from the shared pool: this takes it over) and the rest
    /// of <paramref name="content"/>; returns what <paramref name="upload"/> returned for each part, in order.
    /// </summary>
    public static async Task<List<T>> RunAsync<T>(byte[] first, Stream content, int partsPerStep, int maxParts, string what,
        Func<int, byte[], int, Task<T>> upload, CancellationToken ct)
    {
        var results = new List<T>();
        var inFlight = new List<Task<T>>();
        var number = 1;
        byte[]? part = first;
        var length = FirstPartSize;
        try
        {
            while (true)
            {
                inFlight.Add(UploadAndReturnAsync(upload, number++, part, length));
                part = null;
                if (inFlight.Count >= 2)
                {
                    results.Add(await inFlight[0].ConfigureAwait(false));
                    inFlight.RemoveAt(0);
                }
                var size = PartSizeOf(number, partsPerStep);
                part = ArrayPool<byte>.Shared.Rent(size);
                length = await content.ReadAtLeastAsync(part.AsMemory(0, size), size, throwOnEndOfStream: false, ct).ConfigureAwait(false);
                if (length == 0) break;
                if (number > maxParts)
                    throw new CloudArchiveException(ExitCode.InvalidInput, string.Create(CultureInfo.InvariantCulture, $"{what}: the object is larger than the store takes in one upload " +
                        $"({maxParts} parts, {Capacity(maxParts, partsPerStep) / (double)(1L << 40):0.0} TiB)"));
            }
        }
        finally
        {
            if (part is not null) ArrayPool<byte>.Shared.Return(part);
        }
        foreach (var t in inFlight) results.Add(await t.ConfigureAwait(false));
        return results;
    }

    private static async Task<T> UploadAndReturnAsync<T>(Func<int, byte[], int, Task<T>> upload, int number, byte[] data, int length)
    {
        try
        {
            return await upload(number, data, length).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(data);
        }
    }
}
