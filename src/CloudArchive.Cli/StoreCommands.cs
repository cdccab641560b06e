using CloudArchive.Core.Crypto;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Operations;
using CloudArchive.Core.Storage;
using CloudArchive.Storage;

namespace CloudArchive.Cli;

/// <summary>store-check: what the store honours and how fast it is, before anything is archived to it.</summary>
internal static class StoreCommands
{
    public static IEnumerable<Command> Build()
    {
        var check = new Command("store-check",
            "Write, re-write (expecting refusal), read and delete a probe; report whether the store honours conditional writes, its round trip and 16 MiB " +
                "throughput, and its versioning and object locks (a lock in force is carried by the probes too). Example: cloudarchive store-check --store s3://bucket/prefix");
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
            if (r.Retention is { } ret)
            {
                w.WriteLine($"versioning         {ret.Versioning}{(ret.Versioned && r.ConditionalWriteHonoured
                    ? ": the store may take a second write of a key as a new version; the probe's second writer was refused by the oldest-version rule " +
                        "(reads serve the first version only)" : "")}");
                w.WriteLine($"locks              {ret.LockDetail}{(ret.LocksSupported is null ? " (cannot be told)" : "")}");
                w.WriteLine($"lock in force      {(ret.InForce is { } l ? $"{l}: every write carries it" : "none (--lock-days not set)")}");
                if (r.LockedProbes.Count > 0)
                    w.WriteLine($"probes kept        {string.Join(", ", r.LockedProbes)}: locked, a later expire cannot remove them either before their date");
                if (ret.InForce is not null && ret.LocksSupported == false)
                {
                    Log.Error($"{r.Store}: {SettingsTable.LockDays.Flag} is set but the store cannot hold locks: every write would be refused");
                    return ExitCode.StoreUnsafe;
                }
            }
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
        var copy = new Command("copy",
            "Bring a second store up to date with the archive in the first (WAL, backups, dumps, records, drills), byte for byte (encrypted " +
                "objects as they are: no key needed), each object checked before and read back after, never replacing one. Example: cloudarchive " +
                "copy --from file:///var/lib/cloudarchive --to s3://far-bucket/db1 --to-config /etc/cloudarchive/far.env") { CommonOptions.Json };
        Settings.AddOptions(copy);
        CommandRunner.SetAction(copy, async (ctx, ct) =>
        {
            var (from, to) = ctx.OpenCopyStores();
            TtyProgress? display = null;
            var copier = new ArchiveCopier(from, to, StoreFactory.Keys(ctx.Settings.Get), ctx.Settings.GetInt(SettingsTable.Jobs, Environment.ProcessorCount),
                new Progress(() => display))
            {
                OnTotal = total => display = ctx.Parse.GetValue(CommonOptions.Json) ? null : TtyProgress.Start("copying", total),
            };
            CopyReport r;
            try
            {
                r = await copier.CopyAsync(ct).ConfigureAwait(false);
            }
            finally
            {
                display?.Dispose();
            }
            if (ctx.Parse.GetValue(CommonOptions.Json)) JsonOutput.Write(Console.Out, CopyView.Of(r), OutputJson.Default.CopyView);
            else
            {
                foreach (var c in r.Conflicts) Console.Out.WriteLine("CONFLICT " + c);
                foreach (var c in r.Corrupt) Console.Out.WriteLine("CORRUPT " + c);
                Console.Out.WriteLine(F($"copied {r.Copied} objects ({r.CopiedBytes / 1048576.0:0.0} MiB), skipped {r.Skipped} already there, ") +
                    $"{r.Conflicts.Count} conflicts" + (r.Corrupt.Count > 0 ? $", {r.Corrupt.Count} corrupt" : "") +
                    (r.Unchecked > 0 ? $"; {r.Unchecked} encrypted objects copied unchecked (no key given)" : "") +
                    (r.NotRecorded > 0 ? $"; {r.NotRecorded} objects no record lists yet, left for a later run" : ""));
            }
            if (r.Corrupt.Count > 0)
            {
                Log.Error($"copy: {r.Corrupt.Count} objects failed their check and were not copied (or read back wrong); run verify on {r.From}");
                return ExitCode.Corrupt;
            }
            if (r.Conflicts.Count == 0) return ExitCode.Ok;
            Log.Error($"copy: {r.Conflicts.Count} keys hold other content in {r.To}; nothing was replaced");
            return ExitCode.RefusedOverwrite;
        });
        return [config, check, init, upgrade, keyGenerate, copy];
    }

    /// <summary>Bytes downloaded, to the display the copier starts once it knows the total.</summary>
    private sealed class Progress(Func<TtyProgress?> display) : IProgress<long>
    {
        public void Report(long value) => display()?.Report(value);
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
