namespace CloudArchive.Core.Backup;

/// <summary>
/// A database of the backed-up cluster as pg_database named it when the backup began: its files are under base/OID and
/// pg_tblspc/SPC/PG_.../OID. What restore --db-include reads to know which directory is which database.
/// </summary>
public sealed record BackupDatabase(uint Oid, string Name);
