using System.IO.Pipelines;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Storage;

/// <summary>
/// A conditional put of an object a producer writes as the store reads it (a backup bundle, a dump): producer and store
/// run side by side through a pipe, so only a few MiB are held whatever the object's size. The put sees the end of its
/// stream only when the producer returns; a producer that throws fails the put (S3 aborts the multipart upload, Azure
/// never commits the block list, the local store deletes its temp file), so a half object is never stored.
/// </summary>
public static class StreamedPut
{
    /// <summary>
    /// Puts what <paramref name="produce"/> writes to its stream at <paramref name="key"/>; returns the put's outcome and the
    /// bytes written. When the store fails, <paramref name="storeFailed"/> is told first (to stop what feeds the producer,
    /// or to throw the producer's own failure instead), then the producer is awaited and the store's error rethrown.
    /// </summary>
    public static async Task<(PutOutcome Outcome, long Written)> PutAsync(IObjectStore store, string key, ObjectMetadata metadata,
        Func<Stream, Task> produce, CancellationToken ct, Func<Exception, Task>? storeFailed = null)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 4 << 20, resumeWriterThreshold: 2 << 20));
        var counter = new CountingStream(pipe.Writer.AsStream());
        var producer = Task.Run(async () =>
        {
            try
            {
                await produce(counter).ConfigureAwait(false);
                await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e).ConfigureAwait(false);
                throw;
            }
        }, ct);
        await using var reader = pipe.Reader.AsStream();
        PutOutcome outcome;
        try
        {
            outcome = await store.PutIfAbsentAsync(key, reader, metadata, ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            if (storeFailed is not null) await storeFailed(e).ConfigureAwait(false);
            try { await producer.ConfigureAwait(false); } catch (Exception) { /* the store's error is the one to report */ }
            throw;
        }
        await producer.ConfigureAwait(false);
        return (outcome, counter.Count);
    }
}
