namespace CloudArchive.Postgres;

/// <summary>
/// The non-exclusive backup functions of a server, both run on the backup's one session. 15 renamed them
/// (pg_backup_start/pg_backup_stop) and dropped the exclusive mode; 13 and 14 have pg_start_backup(label, fast,
/// exclusive => false) and pg_stop_backup(exclusive => false, wait_for_archive). Both return the same backup_label and
/// tablespace_map text, so the record is the same. The stop does not wait for the archiver (the server checks once a
/// second): <see cref="BackupPusher"/> waits for the WAL itself, in this store's manifest, which is what a restore needs.
/// </summary>
internal sealed record BackupFunctions(string Start, string Stop)
{
    public static BackupFunctions For(int serverVersionNum) => serverVersionNum >= 150000
        ? new("select pg_backup_start($1, true)::text", "select lsn::text, labelfile, spcmapfile from pg_backup_stop(false)")
        : new("select pg_start_backup($1, true, false)::text", "select lsn::text, labelfile, spcmapfile from pg_stop_backup(false, false)");
}
