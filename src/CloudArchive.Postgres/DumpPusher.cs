using CloudArchive.Native;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CloudArchive.Core;
using CloudArchive.Core.Dump;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Pipeline;
using CloudArchive.Core.Storage;

namespace CloudArchive.Postgres;

/// <summary>What dump-push dumps and how.</summary>
/// <param name="DbName">libpq's --dbname (a name, conninfo or URI); null: libpq's defaults (PGDATABASE...).</param>
/// <param name="Workers">zstd worker threads; 1 compresses on the reading thread.</param>
/// <param name="PgBin">Directory of the PostgreSQL programs (CLOUDARCHIVE_PG_BIN); null: found.</param>
public sealed record DumpPushOptions(string? DbName, string Format, bool Globals, int CompressionLevel, int Workers, string? PgBin)
{
    /// <summary>Shows the bytes pg_dump has written so far (uncompressed; no total: a dump's size is known only at its end).</summary>
    public StartProgress? Progress { get; init; }
}

/// <summary>
/// dump-push: pg_dump (or pg_dumpall --globals-only) writes to its stdout; that stream is hashed and zstd-
/// compressed in one pass into a pipe that feeds the store's conditional put (multipart / staged blocks
/// for large dumps), so only a few MiB are ever held. The put sees the end of its stream only after pg_dump
/// has exited 0: if pg_dump fails, the put fails with it (S3 aborts the multipart upload, Azure never
/// commits the block list, the local store deletes its temp file). The manifest record is written last.
/// </summary>
public sealed class DumpPusher(IObjectStore store, DumpPushOptions options)
{
    /// <summary>Dumps the database (or the cluster's globals) into the store and returns the dump's manifest record.</summary>
    public async Task<DumpRecord> PushAsync(CancellationToken ct)
    {
        var program = options.Globals ? "pg_dumpall" : "pg_dump";
        LibpqSettings.RegisterSecrets(options.DbName);
        var connection = LibpqSettings.ForChild(options.DbName);
        // The server first: an unsupported one, or a pg_dump older than it, fails here, before anything is written.
        var psql = await PgProgram.FindAsync(ClientNeed.Any("psql"), options.PgBin, ct).ConfigureAwait(false);
        var facts = await ServerFacts.ReadAsync(psql.Path, options.Globals && options.DbName is null ? LibpqSettings.ForChild("postgres") : connection, ct)
            .ConfigureAwait(false);
        var dumper = await PgProgram.FindAsync(ClientNeed.ForServer(program, "dump", facts.ServerVersionNum), options.PgBin, ct).ConfigureAwait(false);
        var exe = dumper.Path;

        string format, streamFormat;
        var args = new List<string> { "--no-password" };
        if (options.Globals)
        {
            (format, streamFormat) = (DumpFormat.Plain, "plain");
            args.Add("--globals-only");
        }
        else
        {
            format = options.Format;
            (var flag, streamFormat) = DumpFormat.ForPgDump(format);
            args.Add("--format=" + flag);
            // zstd below does the compressing, faster and better than pg_dump's zlib (tar has none).
            if (flag == "c") args.Add("--compress=0");
        }
        args.AddRange(connection.Arguments);

        var id = StoreLayout.NewId(DateTimeOffset.UtcNow);
        var key = StoreLayout.DumpObjectKey(id);
        var startTime = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        Log.Info($"dump {id}: {program} ({format}) into {store.Description}");

        using var child = PgProgram.Start(exe, args, writeStdin: false, connection.Environment());
        // Ended (the terminal line cleared) with the put, before any warning is printed.
        var progress = options.Progress?.Invoke(program + " output", 0);
        ContentDigest? digest = null;
        long storedSize;
        using (progress)
        {
            PutOutcome outcome;
            try
            {
                (outcome, storedSize) = await StreamedPut.PutAsync(store, key, new ObjectMetadata { [ObjectMetadata.Compression] = ZstdPipeline.Compression },
                    async compressed =>
                    {
                        digest = await CompressAsync(child.StandardOutput, compressed, progress, ct).ConfigureAwait(false);
                        await child.WaitAsync(ct).ConfigureAwait(false);
                        // The put must not complete unless pg_dump succeeded: fail its stream instead of ending it.
                        if (child.ExitStatus != 0) throw child.Failure();
                    }, ct, async storeError =>
                    {
                        // pg_dump's own failure is the reason; otherwise the store's, and pg_dump is stopped.
                        if (child.HasExited && child.ExitStatus != 0 && !child.KilledByUs)
                        {
                            await child.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                            throw child.Failure();
                        }
                        child.Kill();
                    }).ConfigureAwait(false);
            }
            catch (Exception storeError) when (storeError is not CloudArchiveException)
            {
                throw new CloudArchiveException(ExitCode.StoreUnavailable, $"cannot write {key} to {store.Description}: {storeError.Message}", storeError);
            }
            if (outcome is PutOutcome.AlreadyExists)
                throw new CloudArchiveException(ExitCode.RefusedOverwrite,
                    $"{key} already exists in {store.Description}; dump ids never repeat, so another writer is using this store oddly");
        }
        var endTime = DateTimeOffset.UtcNow;
        foreach (var warning in child.Warnings) Log.Warn(warning);

        var record = new DumpRecord
        {
            Id = id,
            Kind = options.Globals ? DumpKind.Globals : DumpKind.Database,
            Database = options.Globals ? null : facts.Database,
            Format = format,
            StreamFormat = streamFormat,
            Key = key,
            ServerVersion = facts.ServerVersion,
            ServerVersionNum = facts.ServerVersionNum,
            PgDumpVersion = dumper.Version,
            StartTime = startTime,
            EndTime = endTime,
            Size = digest!.Length,
            StoredSize = storedSize,
            Sha256 = digest.Sha256,
            Compression = ZstdPipeline.Compression,
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.DumpRecord);
        using var body = new MemoryStream(json, writable: false);
        var written = await store.PutIfAbsentAsync(StoreLayout.DumpRecordKey(id), body, new ObjectMetadata(), ct).ConfigureAwait(false);
        if (written is PutOutcome.AlreadyExists)
            throw new CloudArchiveException(ExitCode.RefusedOverwrite,
                $"the record of dump {id} already exists in {store.Description}; dump ids never repeat, so another writer is using this store oddly");
        Log.Info($"dump {id}: {record.Size} bytes in {clock.Elapsed.TotalSeconds:0.0} s");
        return record;
    }

    /// <summary>
    /// SHA-256 of the uncompressed bytes and zstd in the same pass (zstd on <see cref="DumpPushOptions.Workers"/> threads);
    /// <paramref name="progress"/> counts the bytes read from pg_dump.
    /// </summary>
    private Task<ContentDigest> CompressAsync(Stream input, Stream output, IProgress<long>? progress, CancellationToken ct) =>
        ZstdPipeline.CompressAsync(input, output, options.CompressionLevel, ct, workers: options.Workers, progress: progress);
}

/// <summary>What a dump records about the server, read over the same libpq settings as pg_dump (with psql).</summary>
internal sealed record ServerFacts(string Database, string ServerVersion, int ServerVersionNum)
{
    public static async Task<ServerFacts> ReadAsync(string psql, ChildConnection connection, CancellationToken ct)
    {
        var args = new List<string> { "-X", "--no-password", "-A", "-t", "-q", "--field-separator-zero",
            "-c", "select current_database(), current_setting('server_version'), current_setting('server_version_num')" };
        args.AddRange(connection.Arguments);
        string output;
        try
        {
            output = (await PgProgram.RunAsync(psql, args, ct, connection.Environment()).ConfigureAwait(false)).TrimEnd('\n');
        }
        catch (CloudArchiveException e) when (e.ExitCode == ExitCode.PostgresFailed)
        {
            // The first connection of a dump: an unknown database or a refused login shows here, before pg_dump runs.
            throw new CloudArchiveException(ExitCode.PostgresFailed, $"cannot read the server's version before dumping: {e.Message}", e);
        }
        var fields = output.Split('\0');
        if (fields.Length != 3 || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var num))
            throw new CloudArchiveException(ExitCode.Internal, "psql's answer about the server does not parse");
        if (PostgresVersion.RequireSupported(num) is { } warning) Log.Warn(warning);
        return new ServerFacts(fields[0], fields[1], num);
    }
}
