using CloudArchive.Core.Backup;
using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Tests;

/// <summary>
/// What backup-push reads of PostgreSQL's own text: backup_label's start (LSN and timeline), a backup history file's
/// stop, pg_basebackup -v's end point; a label without what it needs is an error, not a guess.
/// </summary>
public sealed class BackupLabelTests
{
    // As pg_backup_stop returns it (PostgreSQL 17).
    private const string Label = """
        START WAL LOCATION: 0/9000028 (file 000000020000000000000009)
        CHECKPOINT LOCATION: 0/9000060
        BACKUP METHOD: streamed
        BACKUP FROM: primary
        START TIME: 2026-11-25 10:00:00 UTC
        LABEL: cloudarchive 20261125T100000Z-cafe01
        START TIMELINE: 2

        """;

    // The backup history file 000000020000000000000009.00000028.backup: the label's lines with the stop's.
    private static readonly string History = Label.Replace("CHECKPOINT LOCATION:",
        "STOP WAL LOCATION: 0/A000100 (file 00000002000000000000000A)\nCHECKPOINT LOCATION:", StringComparison.Ordinal)
        + "STOP TIME: 2026-11-25 10:00:05 UTC\nSTOP TIMELINE: 2\n";

    [Fact]
    public void TheStartIsReadFromTheLabel()
    {
        Assert.Equal(Lsn.Parse("0/9000028"), BackupLabel.StartLsn(Label));
        Assert.Equal(2u, BackupLabel.StartTimeline(Label));
        Assert.Equal("cloudarchive 20261125T100000Z-cafe01", BackupLabel.Field(Label, "LABEL: "));
    }

    [Fact]
    public void TheStopIsReadFromTheBackupHistoryFile() =>
        Assert.Equal(Lsn.Parse("0/A000100"), BackupLabel.StopLsn(History));

    [Fact]
    public void ALabelWithoutTheLineOrWithAnotherValueIsAnError()
    {
        Assert.Contains("START TIMELINE", Assert.Throws<CloudArchiveException>(() => BackupLabel.StartTimeline("START WAL LOCATION: 0/1 (file x)\n")).Message);
        Assert.Contains("STOP WAL LOCATION", Assert.Throws<CloudArchiveException>(() => BackupLabel.StopLsn(Label)).Message);
        Assert.Throws<CloudArchiveException>(() => BackupLabel.StartTimeline(Label.Replace("START TIMELINE: 2", "START TIMELINE: two")));
        Assert.Throws<CloudArchiveException>(() => BackupLabel.StartLsn(Label.Replace("0/9000028 (file", "somewhere (file")));
    }

    [Fact]
    public void PgBasebackupsEndPointIsItsLastOneAndAbsentWhenItSaysNone()
    {
        const string messages = """
            pg_basebackup: initiating base backup, waiting for checkpoint to complete
            pg_basebackup: checkpoint completed
            pg_basebackup: write-ahead log start point: 0/9000028 on timeline 2
            pg_basebackup: write-ahead log end point: 0/A000100
            pg_basebackup: base backup completed
            """;
        Assert.Equal(Lsn.Parse("0/A000100"), BackupLabel.EndPointOf(messages));
        Assert.Null(BackupLabel.EndPointOf("pg_basebackup: base backup completed\n"));
        Assert.Null(BackupLabel.EndPointOf("pg_basebackup: write-ahead log end point: (unknown)\n"));
    }
}
