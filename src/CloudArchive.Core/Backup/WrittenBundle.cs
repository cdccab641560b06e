namespace CloudArchive.Core.Backup;

/// <summary>A bundle in the store: its record, and the entries of the backup it holds (in the order written).</summary>
public sealed record WrittenBundle(BackupBundle Bundle, IReadOnlyList<BackupEntry> Entries);
