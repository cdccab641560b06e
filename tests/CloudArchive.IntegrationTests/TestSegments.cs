using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Wal;

namespace CloudArchive.IntegrationTests;

/// <summary>WAL files built without a server: a valid long page header followed by compressible, seed-dependent text.</summary>
public static class TestSegments
{
    public const int OneMib = 1024 * 1024;
    public const ulong SystemId = 7_301_234_567_890_123_456UL;

    private static readonly byte[][] Words = "insert update delete commit abort heap btree xlog checkpoint vacuum tuple page lsn relation toast index"
        .Split(' ').Select(Encoding.ASCII.GetBytes).ToArray();

    /// <summary>A segment (or .partial segment) whose header matches its name; different seeds give different content.</summary>
    public static byte[] Segment(string name, int seed, int size = OneMib, ulong systemId = SystemId)
    {
        var bytes = new byte[size];
        FillText(bytes.AsSpan(WalSegmentHeader.Size), seed);
        WalSegmentHeader.For(WalFileName.Parse(name), systemId, (uint)size).WriteTo(bytes);
        return bytes;
    }

    /// <summary>Pseudo-random words and numbers: compresses well, and better at high zstd levels than at low ones.</summary>
    public static void FillText(Span<byte> target, int seed)
    {
        var random = new Random(seed);
        Span<byte> number = stackalloc byte[8];
        var at = 0;
        while (at < target.Length)
        {
            var word = Words[random.Next(Words.Length)];
            var n = random.Next(100_000);
            var digits = 0;
            do { number[digits++] = (byte)('0' + n % 10); n /= 10; } while (n > 0);
            for (var i = 0; i < word.Length && at < target.Length; i++) target[at++] = word[i];
            if (at < target.Length) target[at++] = (byte)' ';
            for (var i = digits - 1; i >= 0 && at < target.Length; i--) target[at++] = number[i];
            if (at < target.Length) target[at++] = (byte)'\n';
        }
    }

    /// <summary>Text like a timeline history file or a backup history file.</summary>
    public static byte[] Text(string firstLine, int seed, int length = 4096)
    {
        var bytes = new byte[length];
        var head = Encoding.ASCII.GetBytes(firstLine + "\n");
        head.CopyTo(bytes, 0);
        FillText(bytes.AsSpan(head.Length), seed);
        return bytes;
    }

    /// <summary>Writes <paramref name="content"/> as <paramref name="dir"/>/<paramref name="name"/> and returns the path.</summary>
    public static string Write(string dir, string name, byte[] content)
    {
        TestEnv.CreateDirectory(dir);
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    public static string WriteSegment(string dir, string name, int seed, int size = OneMib, ulong systemId = SystemId) =>
        Write(dir, name, Segment(name, seed, size, systemId));

    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string Sha256File(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    public static uint TimelineOf(string name) => uint.Parse(name[..8], System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture);

    internal static int ReadInt32(ReadOnlySpan<byte> b) => BinaryPrimitives.ReadInt32LittleEndian(b);
}
