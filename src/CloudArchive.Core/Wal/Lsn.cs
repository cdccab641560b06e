using System.Globalization;

namespace CloudArchive.Core.Wal;

/// <summary>A WAL location, printed as PostgreSQL does: high/low 32 bits in hex.</summary>
public readonly record struct Lsn(ulong Value) : IComparable<Lsn>
{
    /// <summary>Parses PostgreSQL's X/X notation; a <see cref="FormatException"/> when it is not one.</summary>
    public static Lsn Parse(string text)
    {
        if (!TryParse(text, out var lsn))
            throw new FormatException($"'{text}' is not an LSN (expected X/X, e.g. 0/16B3748)");
        return lsn;
    }

    /// <summary>Parses PostgreSQL's X/X notation; false when it is not one.</summary>
    public static bool TryParse(string text, out Lsn lsn)
    {
        lsn = default;
        var slash = text.IndexOf('/');
        if (slash <= 0 || slash == text.Length - 1) return false;
        if (!uint.TryParse(text.AsSpan(0, slash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hi)) return false;
        if (!uint.TryParse(text.AsSpan(slash + 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var lo)) return false;
        lsn = new Lsn(((ulong)hi << 32) | lo);
        return true;
    }

    /// <inheritdoc />
    public int CompareTo(Lsn other) => Value.CompareTo(other.Value);
    /// <summary>Earlier in the WAL.</summary>
    public static bool operator <(Lsn a, Lsn b) => a.Value < b.Value;
    /// <summary>Later in the WAL.</summary>
    public static bool operator >(Lsn a, Lsn b) => a.Value > b.Value;
    /// <summary>Not later in the WAL.</summary>
    public static bool operator <=(Lsn a, Lsn b) => a.Value <= b.Value;
    /// <summary>Not earlier in the WAL.</summary>
    public static bool operator >=(Lsn a, Lsn b) => a.Value >= b.Value;

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{(uint)(Value >> 32):X}/{(uint)Value:X}");
}
