using CloudArchive.Core.Wal;

namespace CloudArchive.Core.Manifest;

/// <summary>
/// Where everything lives in a store. Data objects and manifest records are separate keys: the record is
/// written last, so anything the manifest lists is complete.
/// </summary>
public static class StoreLayout
{
    /// <summary>Where the compressed WAL objects live: wal/TIMELINE/NAME.zst.</summary>
    public const string WalPrefix = "wal/";
    /// <summary>Where base backups' bundles and block maps live: backups/ID/data/.</summary>
    public const string BackupPrefix = "backups/";
    /// <summary>Where wal-receive keeps the segment in progress, piece by piece: wal-stream/TIMELINE/SEGMENT/START-END.zst.</summary>
    public const string WalStreamPrefix = "wal-stream/";
    /// <summary>Where SQL dumps live: dumps/ID/dump.zst.</summary>
    public const string DumpPrefix = "dumps/";
    /// <summary>Where restores in progress keep their leases (RestoreLease).</summary>
    public const string LeasePrefix = "leases/";
    /// <summary>Where store-check and check put (and delete) their probe objects.</summary>
    public const string ProbePrefix = "store-check/";
    /// <summary>Where every manifest record lives: a store holding any is an archive.</summary>
    public const string ManifestPrefix = "manifest/";
    /// <summary>Where WAL manifest records live.</summary>
    public const string ManifestWalPrefix = "manifest/wal/";
    /// <summary>Where backup records live.</summary>
    public const string ManifestBackupPrefix = "manifest/backups/";
    /// <summary>Where dump records live.</summary>
    public const string ManifestDumpPrefix = "manifest/dumps/";
    /// <summary>Where store-upgrade's cluster history records live (<see cref="ClusterHistories"/>).</summary>
    public const string ManifestClusterPrefix = "manifest/clusters/";
    /// <summary>Where an upgraded cluster's history lives: clusters/SYSTEMID/ and under it the root's layout.</summary>
    public const string ClusterPrefix = "clusters/";
    /// <summary>Where restore drill results live.</summary>
    public const string ManifestDrillPrefix = "manifest/drills/";
    private const string RecordSuffix = ".json";

    /// <summary>
    /// The object that says "this is a CloudArchive store", written when the store is created (store-init only). A local
    /// directory without it is neither read as an empty archive nor written into: it is usually a volume that is not
    /// mounted. A local store's marker also names the file system it was made on.
    /// </summary>
    public const string StoreMarkerKey = "cloudarchive-store.json";

    /// <summary>True when <paramref name="store"/> holds any manifest record: an archive, marked or not (made before markers).</summary>
    public static async Task<bool> HoldsArchiveAsync(Storage.IObjectStore store, CancellationToken ct)
    {
        await foreach (var _ in store.ListAsync(ManifestPrefix, ct).ConfigureAwait(false)) return true;
        return false;
    }

    private const string IdTimeFormat = "yyyyMMdd'T'HHmmss'Z'";

    /// <summary>A new backup or dump id: its UTC start time to the second (ids sort by time) and 6 random hex digits.</summary>
    public static string NewId(DateTimeOffset start) =>
        start.UtcDateTime.ToString(IdTimeFormat, System.Globalization.CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..6];

    /// <summary>The start time a backup or dump id carries; null for an id that does not start with one.</summary>
    public static DateTimeOffset? IdTime(string id) =>
        id.Length >= 16 && DateTimeOffset.TryParseExact(id[..16], IdTimeFormat, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal, out var time) ? time : null;

    /// <summary>A new probe object's key (store-check, check): under <see cref="ProbePrefix"/>, never a name anything else uses.</summary>
    public static string NewProbeKey(string kind) => $"{ProbePrefix}{kind}-{DateTime.UtcNow:yyyyMMddTHHmmss}-{Guid.NewGuid():N}";

    /// <summary>Everything of one backup but its record: backups/ID/.</summary>
    public static string BackupDirectory(string backupId) => $"{BackupPrefix}{backupId}/";

    /// <summary>The key of bundle number <paramref name="bundle"/> of a backup.</summary>
    public static string BackupBundleKey(string backupId, int bundle) => $"{BackupDirectory(backupId)}data/{bundle:D5}.tar.zst";

    /// <summary>The key of the block maps of bundle number <paramref name="bundle"/>'s relation files.</summary>
    public static string BackupMapKey(string backupId, int bundle) => $"{BackupDirectory(backupId)}data/{bundle:D5}.map";

    /// <summary>The key of a backup's manifest record.</summary>
    public static string BackupRecordKey(string backupId) => $"{ManifestBackupPrefix}{backupId}{RecordSuffix}";

    /// <summary>The backup id a record key names; null for other keys.</summary>
    public static string? BackupIdFromRecordKey(string key) =>
        key.StartsWith(ManifestBackupPrefix, StringComparison.Ordinal) && key.EndsWith(RecordSuffix, StringComparison.Ordinal)
            ? key[ManifestBackupPrefix.Length..^RecordSuffix.Length] : null;

    /// <summary>The key of a dump's data object.</summary>
    public static string DumpObjectKey(string dumpId) => $"{DumpPrefix}{dumpId}/dump.zst";

    /// <summary>The key of a dump's manifest record.</summary>
    public static string DumpRecordKey(string dumpId) => $"{ManifestDumpPrefix}{dumpId}{RecordSuffix}";

    /// <summary>The dump id a record key names; null for other keys.</summary>
    public static string? DumpIdFromRecordKey(string key) =>
        key.StartsWith(ManifestDumpPrefix, StringComparison.Ordinal) && key.EndsWith(RecordSuffix, StringComparison.Ordinal)
            ? key[ManifestDumpPrefix.Length..^RecordSuffix.Length] : null;

    /// <summary>The key of a cluster history's record.</summary>
    public static string ClusterRecordKey(ulong systemId) => $"{ManifestClusterPrefix}{systemId}{RecordSuffix}";

    /// <summary>The system identifier a cluster history record's key names; null for other keys.</summary>
    public static ulong? ClusterIdFromRecordKey(string key) =>
        key.StartsWith(ManifestClusterPrefix, StringComparison.Ordinal) && key.EndsWith(RecordSuffix, StringComparison.Ordinal)
            && ulong.TryParse(key[ManifestClusterPrefix.Length..^RecordSuffix.Length], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var id)
            ? id : null;

    /// <summary>The stamp the first writer leaves: which cluster the store's first history is (an empty object named by its id).</summary>
    public static string FirstClusterStampKey(ulong systemId) => $"{ManifestClusterPrefix}first-{systemId}{RecordSuffix}";

    /// <summary>The system identifier a first-cluster stamp names; null for other keys.</summary>
    public static ulong? FirstClusterFromStampKey(string key) =>
        key.StartsWith(ManifestClusterPrefix + "first-", StringComparison.Ordinal) && key.EndsWith(RecordSuffix, StringComparison.Ordinal)
            && ulong.TryParse(key[(ManifestClusterPrefix.Length + 6)..^RecordSuffix.Length], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var id)
            ? id : null;

    /// <summary>The key of a drill's result record.</summary>
    public static string DrillRecordKey(string drillId) => $"{ManifestDrillPrefix}{drillId}{RecordSuffix}";

    /// <summary>The drill id a record key names; null for other keys.</summary>
    public static string? DrillIdFromRecordKey(string key) =>
        key.StartsWith(ManifestDrillPrefix, StringComparison.Ordinal) && key.EndsWith(RecordSuffix, StringComparison.Ordinal)
            ? key[ManifestDrillPrefix.Length..^RecordSuffix.Length] : null;

    /// <summary>
    /// A key split into the cluster history it belongs to (<c>clusters/SYSTEMID/</c>, or "" for the store's first history) and the
    /// key within that history's layout.
    /// </summary>
    public static (string History, string Key) SplitHistory(string key)
    {
        if (!key.StartsWith(ClusterPrefix, StringComparison.Ordinal)) return ("", key);
        var slash = key.IndexOf('/', ClusterPrefix.Length);
        return slash > ClusterPrefix.Length && ulong.TryParse(key.AsSpan(ClusterPrefix.Length, slash - ClusterPrefix.Length),
            System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)
            ? (key[..(slash + 1)], key[(slash + 1)..])
            : ("", key);
    }

    /// <summary>
    /// The manifest record that makes a data object part of the archive, within its history's layout (a WAL object's WAL
    /// record, a backup's files' backup record, a dump's dump record); null for a key that is no data object of this layout.
    /// </summary>
    public static string? RecordOf(string key)
    {
        if (key.StartsWith(WalPrefix, StringComparison.Ordinal) && key.EndsWith(".zst", StringComparison.Ordinal)
            && WalFileName.TryParse(key[(key.LastIndexOf('/') + 1)..^4], out var name) && WalObjectKey(name) == key)
            return WalRecordKey(name);
        if (key.StartsWith(BackupPrefix, StringComparison.Ordinal) && key.IndexOf('/', BackupPrefix.Length) is var end and > 0
            && Manifest.ManifestRecords.IsValidId(key[BackupPrefix.Length..end]))
            return BackupRecordKey(key[BackupPrefix.Length..end]);
        if (key.StartsWith(DumpPrefix, StringComparison.Ordinal) && key.IndexOf('/', DumpPrefix.Length) is var dend and > 0
            && Manifest.ManifestRecords.IsValidId(key[DumpPrefix.Length..dend]) && DumpObjectKey(key[DumpPrefix.Length..dend]) == key)
            return DumpRecordKey(key[DumpPrefix.Length..dend]);
        return null;
    }

    /// <summary>The key of a WAL file's compressed object.</summary>
    public static string WalObjectKey(WalFileName name) => $"{WalPrefix}{name.Timeline:X8}/{name.Name}.zst";

    /// <summary>The key of a WAL file's manifest record.</summary>
    public static string WalRecordKey(WalFileName name) => $"{ManifestWalPrefix}{name.Timeline:X8}/{name.Name}{RecordSuffix}";

    /// <summary>The WAL file a manifest record key describes; null for keys that are not WAL records.</summary>
    public static WalFileName? WalNameFromRecordKey(string key)
    {
        if (!key.StartsWith(ManifestWalPrefix, StringComparison.Ordinal) || !key.EndsWith(RecordSuffix, StringComparison.Ordinal))
            return null;
        var slash = key.LastIndexOf('/');
        var name = key[(slash + 1)..^RecordSuffix.Length];
        return WalFileName.TryParse(name, out var n) ? n : null;
    }

    /// <summary>The prefix of the streamed pieces of one segment (wal-receive's segment in progress).</summary>
    public static string StreamedSegmentPrefix(WalFileName segment) => $"{WalStreamPrefix}{segment.Timeline:X8}/{segment.Name}/";

    /// <summary>The key of the streamed bytes [start, end) of a segment, offsets in the segment.</summary>
    public static string StreamedPieceKey(WalFileName segment, long start, long end) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{StreamedSegmentPrefix(segment)}{start:X8}-{end:X8}.zst");

    /// <summary>The segment and byte range a streamed piece's key names; null for any other key (or a range that is not one).</summary>
    public static (WalFileName Segment, long Start, long End)? StreamedPieceFromKey(string key)
    {
        // wal-stream/TTTTTTTT/NAME/SSSSSSSS-EEEEEEEE.zst
        var parts = key.Split('/');
        if (parts.Length != 4 || parts[0] + "/" != WalStreamPrefix || !WalFileName.TryParse(parts[2], out var name) || name.Kind != WalFileKind.Segment
            || parts[1] != name.Timeline.ToString("X8", System.Globalization.CultureInfo.InvariantCulture)
            || parts[3].Length != 21 || parts[3][8] != '-' || !parts[3].EndsWith(".zst", StringComparison.Ordinal)
            || !long.TryParse(parts[3].AsSpan(0, 8), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var start)
            || !long.TryParse(parts[3].AsSpan(9, 8), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var end)
            || end <= start || StreamedPieceKey(name, start, end) != key)
            return null;
        return (name, start, end);
    }
}
