using System.CommandLine;
using System.Globalization;
using CloudArchive.Core;
using CloudArchive.Core.Configuration;
using CloudArchive.Core.Crypto;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;

namespace CloudArchive.Cli;

/// <summary>store-check: what the store honours and how fast it is, before anything is archived to it.</summary>
internal static class StoreCommands
{
    public static IEnumerable<Command> Build()
    {
        var check = new Command("store-check",
            "Write, re-write (expecting refusal), read and delete a probe; report whether the store honours conditional writes, its round trip and 16 MiB " +
                "throughput. Example: cloudarchive store-check --store s3://bucket/prefix");
        CommandRunner.SetAction(check, async (ctx, ct) =>
        {
            var r = await new StoreCheck(ctx.OpenWholeStore()).RunAsync(ct).ConfigureAwait(false);
            var w = Console.Out;
            w.WriteLine($"store              {r.Store}");
            w.WriteLine($"conditional write  " +
                $"{(r.ConditionalWriteHonoured ? "honoured: an existing object is never replaced" : "NOT HONOURED: the store replaced an existing object")}");
            w.WriteLine($"large write        {r.LargeConditionalWriteHonoured switch
            {
                true => "honoured on multi-request (multipart/block list) commits too",
                false => "condition ignored on multi-request commits: large objects rely on unique keys (as CloudArchive writes them)",
                null => "not applicable",
            }}");
            w.WriteLine(F($"first write        {r.WriteMs:0.0} ms"));
            w.WriteLine(F($"round trip         {r.RoundTripMs:0.0} ms (median of 5 metadata reads)"));
            w.WriteLine(F($"throughput         write {r.WriteMibPerSecond:0.0} MiB/s, read {r.ReadMibPerSecond:0.0} MiB/s (16 MiB object)"));
            w.WriteLine($"delete             {(r.DeleteAllowed ? "allowed" : "refused (object lock / immutability): expire cannot remove objects")}");
            if (!r.ConditionalWriteHonoured)
            {
                Log.Error($"{r.Store} does not honour conditional writes; archiving to it could overwrite WAL");
                return ExitCode.StoreUnsafe;
            }
            return ExitCode.Ok;
        });
        var config = new Command("config",
            "The effective settings: each one's value (secrets only as set or not) and where it came from (flag, environment, config file, default). " +
                "Example: cloudarchive config --config /etc/cloudarchive/cloudarchive.env");
        Settings.AddOptions(config);
        CommandRunner.SetAction(config, (ctx, ct) =>
        {
            Console.Out.WriteLine($"config file    {ctx.Settings.ConfigPath ?? $"none ({SettingsTable.Config.Flag} or {SettingsTable.Config.Variable} names one)"}");
            foreach (var (setting, value, source) in ctx.Settings.Effective())
                Console.Out.WriteLine($"{setting.Variable,-40} {value}   [{source}]");
            return Task.FromResult(ExitCode.Ok);
        });
        var archiveId = new Option<string>("--archive-id")
        {
            Description = "Give the store this archive id (32 hex digits) instead of a new one: to adopt a store whose marker was set aside (its " +
                "encrypted objects are bound to the old marker's \"archive\")",
        };
        var init = new Command("store-init",
            "Make this store: create a local store's directory (inside an existing parent) and mark it as a CloudArchive store with a new archive id " +
                "(encrypted objects are bound to it). Example: cloudarchive store-init --store file:///var/lib/cloudarchive") { archiveId };
        CommandRunner.SetAction(init, async (ctx, ct) =>
        {
            var id = ctx.Parse.GetValue(archiveId);
            if (id is not null && !Core.Manifest.StoreMarker.IsArchiveId(id))
                throw new CloudArchiveException(ExitCode.Usage, $"--archive-id {id}: an archive id is 32 lowercase hex digits (the \"archive\" of a store's marker)");
            var store = ctx.OpenWholeStore();
            if (id is null && await HoldsUnmarkedArchiveAsync(store, ct).ConfigureAwait(false))
                throw new CloudArchiveException(ExitCode.Usage, $"{store.Description} already holds an archive but no marker: a new archive id would " +
                    $"orphan its encrypted objects. Adopt it with store-init --archive-id ID, the \"archive\" of its old marker");
            using var marker = new MemoryStream((id is null ? Core.Manifest.StoreMarker.New() : new Core.Manifest.StoreMarker(id, null)).Encode());
            var outcome = await store.PutIfAbsentAsync(Core.Manifest.StoreLayout.StoreMarkerKey, marker, new ObjectMetadata(), ct).ConfigureAwait(false);
            Console.Out.WriteLine(outcome is PutOutcome.Created ? $"initialised {store.Description}" : $"{store.Description} is already a CloudArchive store");
            return ExitCode.Ok;
        });
        static async Task<bool> HoldsUnmarkedArchiveAsync(IObjectStore store, CancellationToken ct)
        {
            try
            {
                return await store.GetInfoAsync(Core.Manifest.StoreLayout.StoreMarkerKey, ct).ConfigureAwait(false) is null
                    && await Core.Manifest.StoreLayout.HoldsArchiveAsync(store, ct).ConfigureAwait(false);
            }
            catch (StoreUnavailableException e) when (!e.Outage)
            {
                return false; // a local directory that is not a store yet (no marker, no manifest), or not there yet
            }
        }
        var upgradePgData = new Option<string>("--pgdata") { Description = "The upgraded cluster's data directory (default: the working directory)" };
        var upgrade = new Command("store-upgrade",
            "After pg_upgrade (or a dump and reload into a new cluster): start the new cluster's history in this store, beside the old one's, which " +
                "stays restorable. Example: cloudarchive store-upgrade --pgdata /var/lib/postgresql/17/main") { upgradePgData };
        CommandRunner.SetAction(upgrade, async (ctx, ct) =>
        {
            var pgdata = Path.GetFullPath(ctx.Parse.GetValue(upgradePgData) ?? Directory.GetCurrentDirectory());
            var control = Core.Wal.ControlFile.TryRead(pgdata)
                ?? throw new CloudArchiveException(ExitCode.Usage, $"{pgdata} holds no readable global/pg_control: name the upgraded cluster's data directory with --pgdata");
            var version = File.Exists(Path.Combine(pgdata, "PG_VERSION")) ? File.ReadAllText(Path.Combine(pgdata, "PG_VERSION")).Trim() : "";
            if (!System.Text.RegularExpressions.Regex.IsMatch(version, "^[0-9]{1,2}$"))
                throw new CloudArchiveException(ExitCode.Usage, $"{pgdata} has no PG_VERSION of a PostgreSQL major: is it a data directory?");
            var store = ctx.OpenWholeStore();
            var histories = await ClusterHistories.ListAsync(store, ct).ConfigureAwait(false);
            if (histories.Any(h => h.SystemId == control.SystemIdentifier))
            {
                Console.Out.WriteLine($"database system {control.SystemIdentifier} already has its history in {store.Description}");
                return ExitCode.Ok;
            }
            var first = await FirstClusterAsync(ClusterHistories.First(store), ct).ConfigureAwait(false)
                ?? throw new CloudArchiveException(ExitCode.Usage, $"{store.Description} holds no archived WAL yet: archive this cluster into it directly, " +
                    "store-upgrade is for the cluster that replaces the one it archives");
            if (first == control.SystemIdentifier.ToString(CultureInfo.InvariantCulture))
                throw new CloudArchiveException(ExitCode.Usage, $"database system {first} is the one {store.Description} was made for: there is nothing to " +
                    "upgrade (store-upgrade is for the new cluster pg_upgrade makes)");
            var history = new ClusterHistory(control.SystemIdentifier, version, DateTimeOffset.UtcNow);
            await ClusterHistories.AddAsync(store, history, ct).ConfigureAwait(false);
            Console.Out.WriteLine($"database system {history.SystemId} (PostgreSQL {version}) now archives into {store.Description} under {history.Prefix}; " +
                $"database system {first} and {histories.Count} later one(s) keep theirs (--system-id to read them). Take a backup now: nothing of the " +
                "new cluster restores before its first one");
            return ExitCode.Ok;
        });

        // The root history's cluster: the system identifier of its first WAL record (null when nothing is archived).
        static async Task<string?> FirstClusterAsync(IObjectStore root, CancellationToken ct)
        {
            await foreach (var item in root.ListAsync(Core.Manifest.StoreLayout.ManifestWalPrefix, ct).ConfigureAwait(false))
            {
                if (Core.Manifest.StoreLayout.WalNameFromRecordKey(item.Key) is not { Kind: Core.Wal.WalFileKind.Segment }) continue;
                var record = await Core.Manifest.ManifestRecords.ReadAsync(root, item.Key, Core.Manifest.ManifestJson.Default.WalRecord, "WAL record",
                    item.Key, ct).ConfigureAwait(false);
                if (record.SystemIdentifier is not null) return record.SystemIdentifier;
            }
            return null;
        }
        var fileArg = new Argument<string>("file") { Description = "Where to write the new key (must not exist; mode 0600)" };
        var keyGenerate = new Command("key-generate",
            "Write a new random 256-bit archive key to FILE for --encryption-key-file; losing every copy of it loses the archive. Example: " +
                "cloudarchive key-generate /etc/cloudarchive/archive.key") { fileArg };
        CommandRunner.SetAction(keyGenerate, (ctx, ct) =>
        {
            var path = ctx.Parse.GetValue(fileArg)!;
            var text = EncryptionKey.Generate();
            try
            {
                using var file = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
                file.Write(System.Text.Encoding.ASCII.GetBytes(text));
                file.Flush(flushToDisk: true);
            }
            catch (IOException e) when (File.Exists(path))
            {
                throw new CloudArchiveException(ExitCode.Usage, $"{path} exists: key-generate never overwrites a key ({e.GetType().Name})");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CloudArchiveException(ExitCode.InvalidInput, $"cannot write {path}: {e.Message}");
            }
            var id = new EncryptionKey(Convert.FromHexString(text.Trim())).Id;
            Console.Out.WriteLine($"key {id} written to {path}: keep a copy outside this host; without it the archive cannot be read");
            return Task.FromResult(ExitCode.Ok);
        });
        return [config, check, init, upgrade, keyGenerate];
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
