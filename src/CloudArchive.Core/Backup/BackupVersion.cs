using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Backup;

/// <summary>
/// The server version a backup's record names must be the one its files are of: a record that says 17 over a data
/// directory of 13 (a record edited, or copied from another backup) would be restored, started with the wrong
/// binaries and refused by the server only after the whole download. What the record itself proves is checked
/// before anything is written: the SHA-256 it lists for PG_VERSION ("17\n") and the tablespaces' version
/// directories (pg_tblspc/OID/PG_17_catversion).
/// </summary>
public static class BackupVersion
{
    /// <summary>Throws <see cref="CorruptObjectException"/> (exit 5) when the record contradicts itself.</summary>
    public static void RequireConsistent(BackupRecord backup)
    {
        var major = PostgresVersion.Major(backup.ServerVersionNum).ToString(CultureInfo.InvariantCulture);
        var says = $"its record says PostgreSQL {PostgresVersion.Display(backup.ServerVersionNum)}";
        var pgVersion = backup.Entries.FirstOrDefault(e => e.Path is "PG_VERSION" or "./PG_VERSION" && e.Sha256 is not null)
            ?? throw Mismatch(backup, $"{says} but it lists no PG_VERSION file");
        if (pgVersion.Sha256 != Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(major + "\n"))))
            throw Mismatch(backup, $"{says} but its PG_VERSION file is not \"{major}\"");
        foreach (var entry in backup.Entries)
        {
            var parts = entry.Path.Split('/');
            if (parts.Length >= 3 && parts[0] == "pg_tblspc" && parts[2].StartsWith("PG_", StringComparison.Ordinal)
                && !parts[2].StartsWith($"PG_{major}_", StringComparison.Ordinal))
                throw Mismatch(backup, $"{says} but its tablespace directory {RestoreLayout.Printable(string.Join('/', parts[..3]))} is another version's");
        }
    }

    private static CorruptObjectException Mismatch(BackupRecord backup, string what) =>
        new($"backup {backup.Id} does not match its own record: {what}; nothing was restored");
}
