using System.Buffers;
using CloudArchive.Native;
using System.Text;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Dump;

/// <summary>
/// pg_dumpall --globals-only writes "CREATE ROLE name;" for every role, including the one the restore
/// connects as, which always exists: its script is meant to be run with errors ignored. To restore it in
/// one transaction that stops at the first real error, each such line becomes a CREATE ROLE that skips a
/// role that already exists; the ALTER ROLE pg_dumpall writes after it still sets every attribute.
/// </summary>
public static class GlobalsScript
{
    private static readonly byte[] CreateRole = "CREATE ROLE "u8.ToArray();

    /// <summary>The line to send instead of <paramref name="line"/> (without its newline), or null to send it unchanged.</summary>
    public static string? Rewrite(ReadOnlySpan<byte> line)
    {
        if (!line.StartsWith(CreateRole) || !line.EndsWith(";"u8)) return null;
        var statement = Encoding.UTF8.GetString(line);
        var tag = "$cloudarchive$";
        for (var n = 1; statement.Contains(tag, StringComparison.Ordinal); n++) tag = $"$cloudarchive{n}$";
        return $"DO {tag}BEGIN {statement} EXCEPTION WHEN duplicate_object THEN NULL; END{tag};";
    }

    /// <summary>A write-only stream that passes a globals script to <paramref name="inner"/> with <see cref="Rewrite"/> applied line by line.</summary>
    public static Stream Filter(Stream inner) => new FilterStream(inner);

    private sealed class FilterStream(Stream inner) : WriteOnlyStream
    {
        private readonly ArrayBufferWriter<byte> _line = new(4096);

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            while (buffer.Length > 0)
            {
                var nl = buffer.Span.IndexOf((byte)'\n');
                if (nl < 0)
                {
                    _line.Write(buffer.Span);
                    return;
                }
                _line.Write(buffer.Span[..nl]);
                await EmitLineAsync(newline: true, ct).ConfigureAwait(false);
                buffer = buffer[(nl + 1)..];
            }
        }

        private async ValueTask EmitLineAsync(bool newline, CancellationToken ct)
        {
            var replacement = Rewrite(_line.WrittenSpan);
            if (replacement is null) await inner.WriteAsync(_line.WrittenMemory, ct).ConfigureAwait(false);
            else await inner.WriteAsync(Encoding.UTF8.GetBytes(replacement), ct).ConfigureAwait(false);
            if (newline) await inner.WriteAsync("\n"u8.ToArray(), ct).ConfigureAwait(false);
            _line.ResetWrittenCount();
        }

        public override async Task FlushAsync(CancellationToken ct)
        {
            await inner.FlushAsync(ct).ConfigureAwait(false);
        }

        /// <summary>Sends a last line that had no newline; call once, at the end.</summary>
        public override async ValueTask DisposeAsync()
        {
            if (_line.WrittenCount > 0) await EmitLineAsync(newline: false, CancellationToken.None).ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() => inner.Flush();
    }
}
