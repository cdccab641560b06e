namespace CloudArchive.Core.Backup;

/// <summary>A tablespace of the backed-up cluster.</summary>
/// <param name="Oid">Its OID: the link name under pg_tblspc.</param>
/// <param name="Name">Its name (pg_tablespace.spcname).</param>
/// <param name="Location">The directory it lived in at backup time.</param>
public sealed record BackupTablespace(uint Oid, string Name, string Location);
