using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CloudArchive.Core.Manifest;
using CloudArchive.Core.Storage;
using CloudArchive.Core.Wal;
using CloudArchive.Storage;

// Bench helpers that build large archives quickly through the real store code.
//   populate-wal-manifest STORE_URL SEGMENTS   manifest records for SEGMENTS segments of timeline 1
//                                               (with one gap), as wal-push writes them
//   scan-psql FILE                             how fast dump-restore's psql-script check reads a plain dump
//   put-latency STORE_URL N                    the store's own round trip: N conditional puts of an 8 KiB streamed
//                                               piece, one after another, as wal-receive --synchronous stores them
if (args.Length == 2 && args[0] == "scan-psql")
{
    var watch = Stopwatch.StartNew();
    await using (var input = File.OpenRead(args[1]))
    await using (var check = CloudArchive.Core.Dump.PsqlScript.Check("bench", null))
        await input.CopyToAsync(check, 1 << 20);
    var mib = new FileInfo(args[1]).Length / 1048576.0;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"scanned {mib:0.0} MiB in {watch.Elapsed.TotalSeconds:0.00} s: {mib / watch.Elapsed.TotalSeconds:0} MiB/s"));
    return 0;
}
if (args.Length == 3 && args[0] == "put-latency")
{
    var target = StoreFactory.Open(args[1], RetryPolicy.Default, s => Environment.GetEnvironmentVariable(s.Variable));
    var rounds = int.Parse(args[2], CultureInfo.InvariantCulture);
    var streamed = new StreamedWal(target);
    var bytes = new byte[8192];
    var times = new List<double>();
    var segment = WalFileName.ForSegment(1, (ulong)Random.Shared.NextInt64(1000, 1_000_000), 16 << 20);
    for (var i = 0; i < rounds; i++)
    {
        Random.Shared.NextBytes(bytes);
        var one = Stopwatch.StartNew();
        await streamed.PutPieceAsync(segment, 16 << 20, 7, (long)i * bytes.Length, bytes, CancellationToken.None);
        times.Add(one.Elapsed.TotalMilliseconds);
    }
    await streamed.RemoveAsync(segment, CancellationToken.None);
    times.Sort();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"put-latency {target.Description}: {rounds} puts, median {times[rounds / 2]:0.0} ms, p95 {times[(int)(rounds * 0.95)]:0.0} ms"));
    return 0;
}
if (args.Length != 3 || args[0] != "populate-wal-manifest")
{
    Console.Error.WriteLine("usage: CloudArchive.Bench populate-wal-manifest STORE_URL SEGMENTS | scan-psql FILE | put-latency STORE_URL N");
    return 2;
}
var store = StoreFactory.Open(args[1], RetryPolicy.Default, s => Environment.GetEnvironmentVariable(s.Variable));
var count = int.Parse(args[2], CultureInfo.InvariantCulture);
const long segmentSize = 16 * 1024 * 1024;
var clock = Stopwatch.StartNew();
await Parallel.ForEachAsync(Enumerable.Range(1, count + 1).Where(i => i != count / 2), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
{
    var name = WalFileName.ForSegment(1, (ulong)i, segmentSize);
    var record = new WalFileRecord
    {
        Name = name.Name, Kind = "Segment", Timeline = 1, Key = StoreLayout.WalObjectKey(name),
        StartLsn = name.StartLsn(segmentSize).ToString(), EndLsn = new Lsn(name.StartLsn(segmentSize).Value + segmentSize).ToString(),
        SegmentSize = segmentSize, SystemIdentifier = "7300000000000000001", Size = segmentSize, StoredSize = 3_000_000,
        Sha256 = new string('0', 64), Compression = "zstd", ArchivedAt = DateTimeOffset.UtcNow,
    };
    using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, ManifestJson.Default.WalFileRecord));
    await store.PutIfAbsentAsync(StoreLayout.WalRecordKey(name), body, new ObjectMetadata(), ct);
});
Console.Error.WriteLine($"wrote {count} manifest records to {store.Description} in {clock.Elapsed.TotalSeconds:0.0} s");
return 0;
