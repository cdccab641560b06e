namespace CloudArchive.Core.Configuration;

/// <summary>
/// Every setting of CloudArchive. Each is, in order of precedence, its flag, its variable, or the same
/// KEY=VALUE line in the config file. Nothing else in the code names a CLOUDARCHIVE_* variable.
/// </summary>
public static class SettingsTable
{
    private static readonly string[] WalPush = ["wal-push"];
    private static readonly string[] Spooling = ["wal-push", "wal-fetch", "wal-push-worker", "wal-prefetch-worker", "wal-agent", "metrics", "wal-receive", "status"];

    /// <summary>Where the archive lives.</summary>
    public static readonly Setting Store = new("CLOUDARCHIVE_STORE", "--store", SettingKind.Text,
        "Store URL: file:///absolute/path, s3://bucket/prefix or azure://container/prefix", "none: required");

    /// <summary>The config file of KEY=VALUE lines.</summary>
    public static readonly Setting Config = new("CLOUDARCHIVE_CONFIG", "--config", SettingKind.Text,
        "Config file of KEY=VALUE lines, keys named as the variables (set empty: none)", "/etc/cloudarchive/cloudarchive.env when it exists");

    /// <summary>How much is logged.</summary>
    public static readonly Setting LogLevel = new("CLOUDARCHIVE_LOG_LEVEL", "--log-level", SettingKind.Text,
        "debug, info, warn, error or off", "warn: quiet on success");

    /// <summary>Stack traces of failures.</summary>
    public static readonly Setting Verbose = new("CLOUDARCHIVE_VERBOSE", "--verbose", SettingKind.Switch,
        "Show stack traces of failures (and info-level lines)", "off");

    /// <summary>How long an unreachable store is retried.</summary>
    public static readonly Setting RetryTimeout = new("CLOUDARCHIVE_RETRY_TIMEOUT", "--retry-timeout", SettingKind.Whole,
        "Seconds to retry an unreachable store before giving up", "60") { Min = 0, Max = 86400, Default = 60 };

    /// <summary>zstd level of what is pushed.</summary>
    public static readonly Setting CompressLevel = new("CLOUDARCHIVE_COMPRESS_LEVEL", "--compress-level", SettingKind.Whole,
        "zstd level 1-19", "3") { Min = 1, Max = 19, Default = 3, Commands = ["wal-push", "backup-push", "dump-push", "wal-push-worker", "wal-agent", "wal-receive"] };

    /// <summary>Parallelism of a command.</summary>
    public static readonly Setting Jobs = new("CLOUDARCHIVE_JOBS", "--jobs", SettingKind.Whole,
        "At once: bundles (backup-push, restore), objects checked (verify) or copied (copy), zstd threads (dump-push), pg_restore -j (dump-restore)",
        "the number of cores; 1 for dump-push and dump-restore")
    {
        Min = 1, Max = 64, Commands = ["backup-push", "restore", "verify", "dump-push", "dump-restore", "drill", "copy"],
    };

    /// <summary>Async push on or off.</summary>
    public static readonly Setting Async = new("CLOUDARCHIVE_ASYNC", "--async", SettingKind.Switch,
        "Push in a background worker that archives every ready segment in parallel", "off") { Commands = WalPush };

    /// <summary>The async worker's parallelism.</summary>
    public static readonly Setting AsyncJobs = new("CLOUDARCHIVE_ASYNC_JOBS", "--async-jobs", SettingKind.Whole,
        "Segments the async worker pushes at once", "one per core") { Min = 1, Max = 64, Commands = ["wal-push", "wal-push-worker"] };

    /// <summary>How long an async wal-push waits for its segment (once --archive-timeout, too easily taken for PostgreSQL's archive_timeout).</summary>
    public static readonly Setting AsyncWait = new("CLOUDARCHIVE_ASYNC_WAIT", "--async-wait", SettingKind.Whole,
        "Seconds a wal-push --async waits for the worker to store its segment", "60") { Min = 1, Max = 86400, Default = 60, Commands = WalPush };

    /// <summary>The backlog past which a failed segment is dropped.</summary>
    public static readonly Setting MaxQueueBytes = new("CLOUDARCHIVE_MAX_QUEUE_BYTES", "--max-queue-bytes", SettingKind.Size,
        "When a segment's own push fails while more than this much WAL waits in pg_wal, it is DROPPED unarchived so the disk does not fill; e.g. 8GiB",
        "none: never drop WAL") { Commands = WalPush };

    /// <summary>The working area of async push and prefetch.</summary>
    public static readonly Setting SpoolDir = new("CLOUDARCHIVE_SPOOL_DIR", "--spool-dir", SettingKind.Text,
        "Working area of async push, prefetch, the agent and wal-receive (status, metrics: where the second store's backlog is)", "pg_wal/.cloudarchive of the data directory; wal-receive: a private temporary directory") { Commands = Spooling };

    /// <summary>Hand wal-push and wal-fetch to the cluster's agent.</summary>
    public static readonly Setting Agent = new("CLOUDARCHIVE_AGENT", "--agent", SettingKind.Switch,
        "Hand wal-push and wal-fetch to a per-cluster agent that keeps the store's connections warm (started on first use)", "off")
    {
        Commands = ["wal-push", "wal-fetch"],
    };

    /// <summary>How many segments wal-fetch fetches ahead.</summary>
    public static readonly Setting Prefetch = new("CLOUDARCHIVE_PREFETCH", "--prefetch", SettingKind.Whole,
        "Segments wal-fetch fetches ahead into the spool, verified, 0-64", "0: off") { Min = 0, Max = 64, Default = 0, Commands = ["wal-fetch", "wal-prefetch-worker"] };

    /// <summary>How long a finished backup waits for its WAL.</summary>
    public static readonly Setting BackupWalTimeout = new("CLOUDARCHIVE_BACKUP_WAL_TIMEOUT", "--wal-timeout", SettingKind.Whole,
        "Seconds a finished backup-push waits for its WAL to be in the store", "60") { Min = 0, Max = 86400, Default = 60, Commands = ["backup-push"] };

    /// <summary>An incremental reads every file, even where the server's WAL summaries could say which blocks changed.</summary>
    public static readonly Setting NoWalSummaries = new("CLOUDARCHIVE_NO_WAL_SUMMARIES", "--no-wal-summaries", SettingKind.Switch,
        "An incremental (diff, incr) reads and compares every file, not only the blocks PostgreSQL 17+'s WAL summaries say changed",
        "off: summaries used where summarize_wal = on") { Commands = ["backup-push"] };

    /// <summary>Where the PostgreSQL client programs are.</summary>
    public static readonly Setting PgBin = new("CLOUDARCHIVE_PG_BIN", "--pg-bin", SettingKind.Text,
        "Directory of pg_basebackup, pg_dump, pg_dumpall, pg_restore and psql (wal-receive: psql)",
        "the newest new enough of PATH, /usr/lib/postgresql/*/bin and pg_config --bindir; given, its programs are used or refused")
    {
        Commands = ["backup-push", "dump-push", "dump-restore", "wal-receive"],
    };

    /// <summary>Where a drill restores.</summary>
    public static readonly Setting DrillDir = new("CLOUDARCHIVE_DRILL_DIR", "--drill-dir", SettingKind.Text,
        "Where drill makes its private directory for the restored cluster (room for the backup and its WAL)", "the system's temporary directory")
    {
        Commands = ["drill"],
    };

    /// <summary>The most the drill directory's volume may hold, where statfs does not show it (an emptyDir's sizeLimit).</summary>
    public static readonly Setting DrillDirLimit = new("CLOUDARCHIVE_DRILL_DIR_LIMIT", "--drill-dir-limit", SettingKind.Size,
        "The most the drill directory may hold (a Kubernetes emptyDir's sizeLimit, a quota): the room check takes the smaller of the free space " +
            "and this limit less what the directory already holds; e.g. 50GiB",
        "none: the file system's free space")
    {
        Commands = ["drill"],
    };

    /// <summary>Where the drill's server binaries are.</summary>
    public static readonly Setting DrillPgBin = new("CLOUDARCHIVE_DRILL_PG_BIN", "--drill-pg-bin", SettingKind.Text,
        "Directory of the backup's major's server binaries (postgres, pg_ctl; pg_amcheck when there)",
        "/usr/lib/postgresql/MAJOR/bin, else /usr/pgsql-MAJOR/bin; given, used or refused")
    {
        Commands = ["drill"],
    };

    /// <summary>Retention: full backups expire keeps.</summary>
    public static readonly Setting RetainFull = new("CLOUDARCHIVE_RETAIN_FULL", "--retain-full", SettingKind.Whole,
        "Retention: expire keeps the newest N full backups and what builds on them; status warns when more are in the store", "none: by count, none")
    {
        Min = 1, Max = 100000, Commands = ["expire"],
    };

    /// <summary>Retention: days of backups expire keeps.</summary>
    public static readonly Setting RetainDays = new("CLOUDARCHIVE_RETAIN_DAYS", "--retain-days", SettingKind.Whole,
        "Retention: expire keeps the backups of the last D days; status warns when older ones stay", "none: by age, none")
    {
        Min = 1, Max = 36500, Commands = ["expire"],
    };

    /// <summary>Retention: dumps expire keeps per database.</summary>
    public static readonly Setting RetainDumps = new("CLOUDARCHIVE_RETAIN_DUMPS", "--retain-dumps", SettingKind.Whole,
        "Retention: expire keeps the newest N SQL dumps of each database (and of the globals)", "none: dumps are kept")
    {
        Min = 1, Max = 100000, Commands = ["expire"],
    };

    /// <summary>The archive keys: encryption on.</summary>
    public static readonly Setting EncryptionKeyFile = new("CLOUDARCHIVE_ENCRYPTION_KEY_FILE", "--encryption-key-file", SettingKind.Text,
        "Key files (from key-generate), separated by commas: every object is encrypted with the first; any of them reads", "none: not encrypted")
    {
        IsPath = true,
    };

    /// <summary>Refuse plain objects: the archive was encrypted from its first object.</summary>
    public static readonly Setting EncryptionRequired = new("CLOUDARCHIVE_ENCRYPTION_REQUIRED", "--encryption-required", SettingKind.Switch,
        "Refuse every object not encrypted with a configured key (an archive encrypted from its start): a planted plain object is corrupt",
        "off: plain objects (written before encryption was turned on) are read");

    /// <summary>The store copy reads.</summary>
    public static readonly Setting CopyFrom = new("CLOUDARCHIVE_COPY_FROM", "--from", SettingKind.Text,
        "The store copy reads (a store URL); reached with this command line's store settings", "the store (CLOUDARCHIVE_STORE)")
    {
        Commands = ["copy"],
    };

    /// <summary>The store copy brings up to date.</summary>
    public static readonly Setting CopyTo = new("CLOUDARCHIVE_COPY_TO", "--to", SettingKind.Text,
        "The store copy brings up to date with the one it reads (a store URL)", "the CLOUDARCHIVE_STORE of --to-config")
    {
        Commands = ["copy"],
    };

    /// <summary>The settings of the store copy writes to, when they are not the source's.</summary>
    public static readonly Setting CopyToConfig = new("CLOUDARCHIVE_COPY_TO_CONFIG", "--to-config", SettingKind.Text,
        "Config file of the store copy writes to (KEY=VALUE lines: its endpoint, CA file, credentials, AWS_* keys, and its CLOUDARCHIVE_STORE): " +
            "given, only its lines reach that store",
        "none: the destination uses the same settings as the source")
    {
        IsPath = true, Commands = ["copy"],
    };

    /// <summary>The commands that read an archive from two stores.</summary>
    private static readonly string[] Readers = ["wal-fetch", "wal-prefetch-worker", "wal-agent", "plan", "restore", "drill", "dump-restore"];

    /// <summary>A second copy of the archive that the reading commands fall back to.</summary>
    public static readonly Setting FallbackStore = new("CLOUDARCHIVE_FALLBACK_STORE", "--fallback-store", SettingKind.Text,
        "A second copy of the archive (a store URL, kept up to date by copy): what the store lacks, cannot serve or holds corrupt is read from it, " +
            "with a warning; absent only when both stores answered",
        "the CLOUDARCHIVE_STORE of --fallback-config; none: one store")
    {
        Commands = Readers,
    };

    /// <summary>The settings of the fallback store, when they are not the store's.</summary>
    public static readonly Setting FallbackConfig = new("CLOUDARCHIVE_FALLBACK_CONFIG", "--fallback-config", SettingKind.Text,
        "Config file of the fallback store (its endpoint, CA file, credentials, AWS_* keys, and its CLOUDARCHIVE_STORE): given, only its lines " +
            "reach that store (the encryption key settings are this command line's)",
        "none: the fallback store uses the store's settings")
    {
        IsPath = true, Commands = Readers,
    };

    /// <summary>The commands that write to, read from or report on a second store that archiving writes to as well.</summary>
    private static readonly string[] TwoStores =
    [
        "wal-push", "wal-push-worker", "wal-agent", "backup-push", "dump-push", "wal-fetch", "wal-prefetch-worker", "plan", "restore", "drill",
        "dump-restore", "status", "metrics", "expire", "verify",
    ];

    /// <summary>A second store that receives everything archived, beside the store.</summary>
    public static readonly Setting Store2 = new("CLOUDARCHIVE_STORE_2", "--store-2", SettingKind.Text,
        "A second store (a store URL) that receives every WAL file, backup and dump as well, the same bytes as the store; the reading commands " +
            "fall back to it, status and metrics say what it lacks, expire and verify work on both",
        "the CLOUDARCHIVE_STORE of --store-2-config; none: one store")
    {
        Commands = TwoStores,
    };

    /// <summary>The second store's settings, when they are not the store's.</summary>
    public static readonly Setting Store2Config = new("CLOUDARCHIVE_STORE_2_CONFIG", "--store-2-config", SettingKind.Text,
        "Config file of the second store (its endpoint, CA file, credentials, AWS_* keys, its CLOUDARCHIVE_STORE and its CLOUDARCHIVE_RETAIN_* " +
            "retention): given, only its lines reach that store (the encryption key settings are this command line's)",
        "none: the second store uses the store's settings")
    {
        IsPath = true, Commands = TwoStores,
    };

    /// <summary>Whether archiving waits for the second store.</summary>
    public static readonly Setting Store2Mode = new("CLOUDARCHIVE_STORE_2_MODE", "--store-2-mode", SettingKind.Text,
        "required: a WAL file, backup or dump is archived only once both stores hold it; best-effort: a second store that is down or refuses " +
            "does not stop archiving, what it missed is kept in the spool's backlog and copied to it later (status and metrics show it)",
        "required")
    {
        Commands = TwoStores,
    };

    /// <summary>S3-compatible endpoint.</summary>
    public static readonly Setting S3Endpoint = new("CLOUDARCHIVE_S3_ENDPOINT", "--s3-endpoint", SettingKind.Text,
        "URL of an S3-compatible server", "AWS");

    /// <summary>S3 region.</summary>
    public static readonly Setting S3Region = new("CLOUDARCHIVE_S3_REGION", "--s3-region", SettingKind.Text,
        "S3 region", "the SDK's; us-east-1 with an endpoint");

    /// <summary>Bucket in the path or in the host name.</summary>
    public static readonly Setting S3ForcePathStyle = new("CLOUDARCHIVE_S3_FORCE_PATH_STYLE", "--s3-force-path-style", SettingKind.Text,
        "true|false: the bucket in the path, not the host name", "true with an endpoint");

    /// <summary>The SDK's request checksums.</summary>
    public static readonly Setting S3Checksum = new("CLOUDARCHIVE_S3_CHECKSUM", "--s3-checksum", SettingKind.Text,
        "when-required|when-supported: SDK checksums (many S3-compatible servers reject the SDK's CRC trailers)", "when-required");

    /// <summary>S3 storage class of new objects.</summary>
    public static readonly Setting S3StorageClass = new("CLOUDARCHIVE_S3_STORAGE_CLASS", "--s3-storage-class", SettingKind.Text,
        "S3 storage class, e.g. STANDARD_IA", "the bucket's");

    /// <summary>S3 server-side encryption.</summary>
    public static readonly Setting S3Sse = new("CLOUDARCHIVE_S3_SSE", "--s3-sse", SettingKind.Text,
        "AES256 or aws:kms server-side encryption", "the bucket's");

    /// <summary>The KMS key of aws:kms.</summary>
    public static readonly Setting S3SseKmsKeyId = new("CLOUDARCHIVE_S3_SSE_KMS_KEY_ID", "--s3-sse-kms-key-id", SettingKind.Text,
        "KMS key for aws:kms", "the account's default key");

    /// <summary>The CAs an S3 endpoint's certificate must chain to (a private CA), instead of the system's.</summary>
    public static readonly Setting S3CaFile = new("CLOUDARCHIVE_S3_CA_FILE", "--s3-ca-file", SettingKind.Text,
        "PEM files (separated by commas) of the CA certificates trusted for the S3 endpoint instead of the system's; the host name is still checked",
        "the system's CAs")
    {
        IsPath = true,
    };

    /// <summary>An Azure connection string (a secret: variable or config file only).</summary>
    public static readonly Setting AzureConnectionString = new("AZURE_STORAGE_CONNECTION_STRING", null, SettingKind.Text,
        "Azure connection string (account key or SAS)", "none") { Secret = true };

    /// <summary>The Azure account's blob endpoint.</summary>
    public static readonly Setting AzureAccountUrl = new("CLOUDARCHIVE_AZURE_ACCOUNT_URL", "--azure-account-url", SettingKind.Text,
        "https://ACCOUNT.blob.core.windows.net, with an account key, a SAS token or else an Azure identity", "none");

    /// <summary>The Azure account key (a secret).</summary>
    public static readonly Setting AzureAccountKey = new("CLOUDARCHIVE_AZURE_ACCOUNT_KEY", null, SettingKind.Text,
        "Azure account key for the account URL", "none") { Secret = true };

    /// <summary>An Azure SAS token (a secret).</summary>
    public static readonly Setting AzureSasToken = new("CLOUDARCHIVE_AZURE_SAS_TOKEN", null, SettingKind.Text,
        "Azure SAS token for the account URL", "none") { Secret = true };

    /// <summary>The CAs the Azure endpoint's certificate must chain to (a private CA, Azure Stack, Azurite), instead of the system's.</summary>
    public static readonly Setting AzureCaFile = new("CLOUDARCHIVE_AZURE_CA_FILE", "--azure-ca-file", SettingKind.Text,
        "PEM files (separated by commas) of the CA certificates trusted for the Azure endpoint instead of the system's; the host name is still checked",
        "the system's CAs")
    {
        IsPath = true,
    };

    /// <summary>Days every object written stays locked (S3 Object Lock, Azure immutability); a store setting.</summary>
    public static readonly Setting LockDays = new("CLOUDARCHIVE_LOCK_DAYS", "--lock-days", SettingKind.Whole,
        "Write every object with a retention lock for N days (S3 Object Lock on a bucket made with it, Azure version-level immutability): nobody " +
            "deletes or replaces it before then; at least the retention window, or expire keeps objects longer", "0: no lock")
    {
        Min = 0, Max = 36500, Default = 0,
    };

    /// <summary>How strictly the lock holds.</summary>
    public static readonly Setting LockMode = new("CLOUDARCHIVE_LOCK_MODE", "--lock-mode", SettingKind.Text,
        "governance|compliance: S3 Object Lock mode (GOVERNANCE: a holder of s3:BypassGovernanceRetention may lift it; COMPLIANCE: nobody), " +
            "Azure immutability policy mode (Unlocked, Locked)", "governance");

    /// <summary>Which cluster history of an upgraded store the reading commands work on (store-upgrade).</summary>
    public static readonly Setting SystemId = new("CLOUDARCHIVE_SYSTEM_ID", "--system-id", SettingKind.Text,
        "In a store that store-upgrade gave a second history: the database system identifier whose backups, WAL and dumps to work on " +
            "(backup-list shows them)",
        "the newest history (wal-push, wal-fetch and backup-push: always their own cluster's)")
    {
        Commands = ["backup-list", "plan", "restore", "drill", "status", "verify", "expire", "metrics", "wal-list", "dump-list", "dump-restore"],
    };

    /// <summary>Every setting, in the order help and docs/reference.md list them.</summary>
    public static readonly IReadOnlyList<Setting> All =
    [
        Store, Config, LogLevel, Verbose, RetryTimeout, CompressLevel, Jobs, Async, AsyncJobs, AsyncWait, MaxQueueBytes,
        SpoolDir, Agent, Prefetch, BackupWalTimeout, NoWalSummaries, PgBin, DrillDir, DrillDirLimit, DrillPgBin, RetainFull, RetainDays, RetainDumps, EncryptionKeyFile, EncryptionRequired,
        SystemId, CopyFrom, CopyTo, CopyToConfig, FallbackStore, FallbackConfig, Store2, Store2Config, Store2Mode,
        LockDays, LockMode, S3Endpoint, S3Region, S3ForcePathStyle, S3Checksum, S3StorageClass, S3Sse, S3SseKmsKeyId, S3CaFile,
        AzureConnectionString, AzureAccountUrl, AzureAccountKey, AzureSasToken, AzureCaFile,
    ];

    /// <summary>Names a setting had before: refused wherever they appear (flag, environment, config file), naming the setting now.</summary>
    public static readonly IReadOnlyList<RenamedSetting> Renamed =
    [
        new("CLOUDARCHIVE_ARCHIVE_TIMEOUT", "--archive-timeout", AsyncWait, "it is not PostgreSQL's archive_timeout"),
    ];

    /// <summary>The config file read when neither --config nor CLOUDARCHIVE_CONFIG names one (CLOUDARCHIVE_CONFIG= set empty: none).</summary>
    public const string DefaultConfigFile = "/etc/cloudarchive/cloudarchive.env";

    /// <summary>The non-secret settings that say which store and how to reach it: what restore_command and a background worker need too.</summary>
    public static readonly IReadOnlyList<Setting> StoreAccess =
    [
        Store, EncryptionKeyFile, EncryptionRequired, S3Endpoint, S3Region, S3ForcePathStyle, S3Checksum, S3StorageClass, S3Sse, S3SseKmsKeyId, S3CaFile,
        AzureAccountUrl, AzureCaFile, FallbackStore, FallbackConfig, Store2, Store2Config, Store2Mode, LockDays, LockMode,
    ];
}

/// <summary>A setting's former name.</summary>
/// <param name="Variable">The old variable (and config key).</param>
/// <param name="Flag">The old flag.</param>
/// <param name="Now">The setting it became.</param>
/// <param name="Why">Why it was renamed, for the refusal.</param>
public sealed record RenamedSetting(string Variable, string Flag, Setting Now, string Why)
{
    /// <summary>The one line that refuses the old name.</summary>
    public string Refusal => $"{Variable} ({Flag}) is now {Now.Variable} ({Now.Flag}): renamed because {Why}";
}
