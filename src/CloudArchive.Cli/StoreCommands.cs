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
            var store = ctx.OpenWholeStore();
            var made = await StoreSetup.InitAsync(store, ctx.Parse.GetValue(archiveId), ct).ConfigureAwait(false);
            Console.Out.WriteLine(made ? $"initialised {store.Description}" : $"{store.Description} is already a CloudArchive store");
            return ExitCode.Ok;
        });
        var upgradePgData = new Option<string>("--pgdata") { Description = "The upgraded cluster's data directory (default: the working directory)" };
        var upgrade = new Command("store-upgrade",
            "After pg_upgrade (or a dump and reload into a new cluster): start the new cluster's history in this store, beside the old one's, which " +
                "stays restorable. Example: cloudarchive store-upgrade --pgdata /var/lib/postgresql/17/main") { upgradePgData };
        CommandRunner.SetAction(upgrade, async (ctx, ct) =>
        {
            var store = ctx.OpenWholeStore();
            var r = await StoreSetup.UpgradeAsync(store, Path.GetFullPath(ctx.Parse.GetValue(upgradePgData) ?? Directory.GetCurrentDirectory()), ct)
                .ConfigureAwait(false);
            Console.Out.WriteLine(!r.Added
                ? $"database system {r.History.SystemId} already has its history in {store.Description}"
                : $"database system {r.History.SystemId} (PostgreSQL {r.History.PgVersion}) now archives into {store.Description} under " +
                    $"{r.History.Prefix}; database system {r.FirstSystemId} and {r.EarlierHistories} later one(s) keep theirs (--system-id to read them). " +
                    "Take a backup now: nothing of the new cluster restores before its first one");
            return ExitCode.Ok;
        });
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
