using System.Buffers;
using CloudArchive.Native;
using System.Globalization;
using System.Text;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Dump;

/// <summary>
/// A plain or globals dump is a script that psql runs, and psql obeys backslash commands anywhere outside quotes:
/// <c>\!</c> runs a shell, <c>\o |cmd</c> and <c>\copy ... program</c> too. A script from a store that others can
/// write to must not reach them. Two locks:
/// <list type="bullet">
/// <item>This scanner follows psql's lexer (quotes, quoted identifiers, dollar quotes, nested comments, COPY data)
/// and refuses, with the line number, any meta-command but those pg_dump writes between statements
/// (<c>\restrict KEY</c>, <c>\unrestrict KEY</c>, and <c>\connect</c> in pg_dump's two forms to the database being
/// restored into or one the script created: <see cref="ConnectTarget"/>), any COPY other than <c>COPY ... FROM stdin;</c>,
/// a COPY ... PROGRAM anywhere inside a statement (<see cref="LookForCopyProgram"/>), and anything where psql's reading
/// could differ from its own (a quote right after a backslash, a NUL byte).
/// It runs over the whole dump in the verification pass, before anything is restored.</item>
/// <item>When the script is fed to psql (<see cref="Filter"/>), it is preceded by <c>\restrict</c> with a random key
/// only this process knows, so psql itself refuses every meta-command the scanner might have missed; pg_dump's own
/// restrict lines are dropped and a <c>\connect</c> is let through by lifting the restriction around it.</item>
/// </list>
/// </summary>
public sealed class PsqlScript
{
    private const int MaxLine = 64 << 20;

    private enum State { Normal, Single, Double, Dollar, Block, CopyData }

    private readonly string _what;
    private readonly string? _key;
    private readonly string? _database;
    private readonly bool _pgRestore;
    private readonly HashSet<string> _created = new(StringComparer.Ordinal);
    private bool _afterEncoding;
    private readonly ArrayBufferWriter<byte> _line = new(4096);
    private State _state;
    private int _depth;
    private byte[] _tag = [];
    private long _lineNo = 1;

    // psql's statement tracking, as far as it decides where a statement ends (and so where COPY data begins).
    private bool _started;
    private string? _firstWord;
    private bool _copyStatement;
    private bool _uncertainStart;
    private int _parens;
    private int _beginDepth;
    private int _identifiers;
    private readonly char[] _firstLetters = new char[4];
    private readonly StringBuilder _tail = new();

    // CREATE DATABASE name: 1 after "create database", until the name.
    private int _createDatabase;

    // COPY ... PROGRAM inside a statement: a "copy" word seen in it, and whether the text so far ends in "to" or "from".
    private bool _copyWord;
    private bool _endsInToOrFrom;

    // COPY data: only the start of each line matters.
    private long _copyLineLength;
    private readonly byte[] _copyHead = new byte[3];

    private PsqlScript(string what, string? key, string? database, bool pgRestore)
    {
        _what = what;
        _key = key;
        _database = database;
        _pgRestore = pgRestore;
    }

    /// <summary>
    /// A write-only sink that scans the script and keeps nothing; a refused script raises <see cref="CorruptObjectException"/>.
    /// <paramref name="database"/>: the database psql restores into, the only one (besides those the script creates) a
    /// <c>\connect</c> may name; null: none.
    /// </summary>
    public static Stream Check(string what, string? database) => new GuardStream(new PsqlScript(what, null, database, pgRestore: false), null);

    /// <summary>
    /// A write-only stream that scans the script as <see cref="Check"/> does and writes what psql should run to
    /// <paramref name="inner"/> (left open): <c>\restrict KEY</c> first, then the script with pg_dump's own
    /// restrict lines blanked.
    /// </summary>
    public static Stream Filter(Stream inner, string what, string key, string? database)
    {
        if (key.Length == 0 || !key.All(char.IsAsciiLetterOrDigit)) throw new ArgumentException("a restrict key is alphanumeric", nameof(key));
        return new GuardStream(new PsqlScript(what, key, database, pgRestore: false), inner);
    }

    /// <summary>
    /// A sink for pg_restore's rendering of a custom or directory dump (<c>pg_restore -f -</c>), which no psql runs:
    /// pg_restore sends each entry to the server itself. Only the SQL rules apply (COPY ... PROGRAM, COPY other
    /// than FROM stdin); backslashes are text, and a quote after a backslash ends a string, as pg_dump's
    /// standard_conforming_strings = on reads it.
    /// </summary>
    public static Stream CheckRestoreScript(string what) => new GuardStream(new PsqlScript(what, null, null, pgRestore: true), null);

    /// <summary>A fresh key for psql's \restrict (alphanumeric, as psql requires).</summary>
    public static string NewKey() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));

    /// <summary>
    /// Whether this psql has restricted mode (<c>\restrict</c>): the minor releases of August 2025 on
    /// (13.22, 14.19, 15.14, 16.10, 17.6) and every release from 18. <paramref name="version"/>: "15.14 (Debian ...)".
    /// </summary>
    public static bool SupportsRestrict(string version)
    {
        var parts = version.Split([' ', '.', '(', 'b', 'r'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var major)) return false;
        var minor = parts.Length > 1 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m : 0;
        return major switch
        {
            >= 18 => true,
            17 => minor >= 6,
            16 => minor >= 10,
            15 => minor >= 14,
            14 => minor >= 19,
            13 => minor >= 22,
            _ => false,
        };
    }

    private void Write(ReadOnlySpan<byte> data, IBufferWriter<byte>? output)
    {
        while (data.Length > 0)
        {
            var nl = data.IndexOf((byte)'\n');
            var part = nl < 0 ? data : data[..nl];
            if (part.Contains((byte)0)) throw Refuse("holds a NUL byte, which psql would read differently");
            if (_state == State.CopyData)
            {
                // Passed on at once: a COPY line can be as long as a row.
                for (var i = 0; i < part.Length && _copyLineLength + i < _copyHead.Length; i++) _copyHead[(int)_copyLineLength + i] = part[i];
                _copyLineLength += part.Length;
                output?.Write(part);
                if (nl < 0) return;
                output?.Write("\n"u8);
                EndCopyLine();
            }
            else
            {
                if (_line.WrittenCount + part.Length > MaxLine) throw Refuse($"is longer than {MaxLine >> 20} MiB");
                _line.Write(part);
                if (nl < 0) return;
                EndLine(output, newline: true);
            }
            data = data[(nl + 1)..];
        }
    }

    private void Complete(IBufferWriter<byte>? output)
    {
        if (_state != State.CopyData && _line.WrittenCount > 0) EndLine(output, newline: false);
    }

    private void EndCopyLine()
    {
        var head = _copyHead.AsSpan(0, (int)Math.Min(_copyLineLength, _copyHead.Length));
        if (_copyLineLength is 2 or 3 && head[0] == '\\' && head[1] == '.' && (_copyLineLength == 2 || head[2] == '\r'))
            _state = State.Normal;
        _copyLineLength = 0;
        _lineNo++;
    }

    private void EndLine(IBufferWriter<byte>? output, bool newline)
    {
        var line = _line.WrittenSpan;
        var replacement = Scan(line);
        if (output is not null)
        {
            if (replacement is null) output.Write(line);
            else output.Write(Encoding.ASCII.GetBytes(replacement));
            if (newline) output.Write("\n"u8);
        }
        _line.ResetWrittenCount();
        _lineNo++;
    }

    /// <summary>Follows psql over one line; returns what to send instead of it (a meta-command line), or null to send it as it is.</summary>
    private string? Scan(ReadOnlySpan<byte> line)
    {
        if (_afterEncoding && !line.StartsWith("\\connect "u8))
            throw Refuse("has \\encoding SQL_ASCII without the \\connect pg_dump writes after it");
        var copyStarts = false;
        var from = 0; // the start of the text not yet searched for COPY ... PROGRAM
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            var next = i + 1 < line.Length ? line[i + 1] : (byte)'\n';
            switch (_state)
            {
                case State.Single:
                {
                    // Straight to the next quote: string contents are most of an INSERT-style script.
                    var q = line[i..].IndexOf((byte)'\'');
                    if (q < 0) return Searched(line[from..], null);
                    i += q;
                    next = i + 1 < line.Length ? line[i + 1] : (byte)'\n';
                }
                    // E'...' and standard_conforming_strings=off read \' as a quote inside the string; on, it ends it.
                    // Which one psql sees depends on server state this scanner cannot know: refuse rather than guess.
                    if (i > 0 && line[i - 1] == '\\' && !_pgRestore) throw Refuse("has a quote right after a backslash inside a string literal, which psql may read " +
                        "either way; restore this dump from a custom-format copy");
                    if (next == '\'') i++;
                    else _state = State.Normal;
                    continue;
                case State.Double:
                {
                    var q = line[i..].IndexOf((byte)'"');
                    if (q < 0) return Searched(line[from..], null);
                    i += q;
                    next = i + 1 < line.Length ? line[i + 1] : (byte)'\n';
                }
                    if (next == '"') i++;
                    else _state = State.Normal;
                    continue;
                case State.Dollar:
                {
                    var end = line[i..].IndexOf(_tag);
                    if (end < 0) return Searched(line[from..], null);
                    i += end + _tag.Length - 1;
                    _state = State.Normal;
                    continue;
                }
                case State.Block:
                    if (c == '/' && next == '*') { _depth++; i++; }
                    else if (c == '*' && next == '/') { i++; if (--_depth == 0) _state = State.Normal; }
                    continue;
            }

            if (copyStarts && !IsSpace(c)) throw Refuse("has text after a COPY ... FROM stdin; statement on the same line");
            var prev = i > 0 ? line[i - 1] : (byte)'\n';
            switch (c)
            {
                case (byte)'-' when next == '-':
                    return Searched(line[from..i], copyStarts ? Copy() : null); // a comment to the end of the line
                case (byte)'/' when next == '*':
                    _state = State.Block;
                    _depth = 1;
                    i++;
                    Note(' ');
                    continue;
                case (byte)'\'':
                    _state = State.Single;
                    Started('x');
                    continue;
                case (byte)'"':
                    if (_createDatabase == 1) CreatedDatabase(line[i..]);
                    _state = State.Double;
                    Started('x');
                    continue;
                case (byte)'$' when !IsIdent(prev) && DollarTag(line[i..]) is var tag and > 0:
                    _tag = line.Slice(i, tag).ToArray();
                    _state = State.Dollar;
                    i += tag - 1;
                    Started('x');
                    continue;
                case (byte)'\\':
                    if (_pgRestore)
                    {
                        Started('\\');
                        continue;
                    }
                    if (i == 0 && !_started) return MetaCommand(line);
                    throw Refuse($"runs the psql meta-command {Printable(line[i..])}, which pg_dump does not write");
                case (byte)'(':
                    _parens++;
                    Started('(');
                    continue;
                case (byte)')':
                    if (_parens > 0) _parens--;
                    Started(')');
                    continue;
                case (byte)';':
                    LookForCopyProgram(line[from..i]);
                    from = i + 1;
                    copyStarts = EndStatement();
                    continue;
            }
            if (IsIdentStart(c) && !IsIdent(prev))
            {
                var length = 1;
                while (i + length < line.Length && IsIdent(line[i + length])) length++;
                Word(line.Slice(i, length));
                i += length - 1;
                continue;
            }
            if (IsSpace(c)) Note(' ');
            else Started((char)c);
        }
        return Searched(line[from..], copyStarts ? Copy() : null);

        string? Copy()
        {
            _state = State.CopyData;
            return null;
        }

        string? Searched(ReadOnlySpan<byte> rest, string? result)
        {
            LookForCopyProgram(rest);
            return result;
        }
    }

    private static readonly SearchValues<byte> WordEnds = SearchValues.Create("yYmM"u8);

    /// <summary>
    /// A COPY ... TO/FROM PROGRAM runs a program on the database server as its operating system user, for a superuser or a
    /// member of pg_execute_server_program. A top-level one is refused as any COPY but FROM stdin is; this finds one inside a
    /// statement: in a DO block, a function body, or a string some SQL executes. Every word counts, quoted or not (comments
    /// after -- at the top level aside): a "copy", then later in the same statement "to program" or "from program" (between
    /// the two words only spaces, quotes and ||). A tripwire, not a proof: SQL can build the words as it runs.
    /// </summary>
    private void LookForCopyProgram(ReadOnlySpan<byte> text)
    {
        if (_copyStatement) return; // its end must be FROM stdin (EndStatement)
        var at = 0;
        while (at < text.Length && text[at..].IndexOfAny(WordEnds) is var hit and >= 0)
        {
            var end = at + hit + 1;
            at = end;
            if (end < text.Length && IsWordByte(text[end])) continue;
            if (IsWordAt(text, end, "copy"u8)) _copyWord = true;
            else if (_copyWord && IsWordAt(text, end, "program"u8) && ToOrFromBefore(text, end - 7) is var before
                && (before == 1 || before == -1 && _endsInToOrFrom))
                throw Refuse("has a COPY ... PROGRAM inside a statement (a DO block, a function body or a string it runs), which can " +
                    "run a program on the database server" + (_pgRestore ? "" : " (if it is row data of an INSERT-style dump, take a custom-format dump)") +
                    "; if you trust this dump, fetch it (dump-fetch) and restore it by hand");
        }
        var tail = ToOrFromBefore(text, text.Length);
        if (tail >= 0) _endsInToOrFrom = tail == 1;
    }

    /// <summary>Whether <paramref name="word"/> (lower case) ends at <paramref name="end"/> as a whole word, in any case.</summary>
    private static bool IsWordAt(ReadOnlySpan<byte> text, int end, ReadOnlySpan<byte> word)
    {
        var start = end - word.Length;
        return start >= 0 && (start == 0 || !IsWordByte(text[start - 1])) && Ascii.EqualsIgnoreCase(text[start..end], word);
    }

    /// <summary>The word before <paramref name="end"/>, past spaces, quotes and |: 1 when it is "to" or "from", 0 another word or sign, -1 none.</summary>
    private static int ToOrFromBefore(ReadOnlySpan<byte> text, int end)
    {
        var j = end - 1;
        while (j >= 0 && text[j] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\'' or (byte)'"' or (byte)'|') j--;
        if (j < 0) return -1;
        var wordEnd = j + 1;
        while (j >= 0 && IsWordByte(text[j])) j--;
        var word = text[(j + 1)..wordEnd];
        return Ascii.EqualsIgnoreCase(word, "to"u8) || Ascii.EqualsIgnoreCase(word, "from"u8) ? 1 : 0;
    }

    private static bool IsWordByte(byte c) => char.IsAsciiLetterOrDigit((char)c) || c == '_' || c >= 0x80;

    /// <summary>A ';' outside parentheses. True when it ends pg_dump's COPY ... FROM stdin, whose data follows from the next line.</summary>
    private bool EndStatement()
    {
        if (_parens > 0)
        {
            Note(';');
            return false;
        }
        if (_beginDepth > 0)
        {
            // Inside CREATE FUNCTION ... BEGIN ATOMIC: psql 14 and later go on with the statement, psql 13 ends it.
            _uncertainStart = true;
            Note(';');
            return false;
        }
        var copy = _firstWord == "copy";
        if (copy)
        {
            var tail = _tail.ToString().TrimEnd();
            if (!tail.EndsWith(" from stdin", StringComparison.Ordinal) && !tail.EndsWith(")from stdin", StringComparison.Ordinal))
                throw Refuse("has a COPY to or from something other than stdin, which pg_dump does not write");
        }
        _started = false;
        _firstWord = null;
        _copyStatement = false;
        _uncertainStart = false;
        _identifiers = 0;
        _tail.Clear();
        _createDatabase = 0;
        _copyWord = false;
        _endsInToOrFrom = false;
        return copy;
    }

    /// <summary>An identifier or keyword, tracked as psql does to find the BEGIN ... END of a function body.</summary>
    private void Word(ReadOnlySpan<byte> bytes)
    {
        var f = _firstLetters;
        var inFunction = f[0] == 'c' && (f[1] is 'f' or 'p' || (f[1] == 'o' && f[2] == 'r' && f[3] is 'f' or 'p'));
        // Most words of a script matter to nothing tracked here: spelled out only when one might.
        if (_started && !_uncertainStart && !_copyStatement && _identifiers >= f.Length && !inFunction)
        {
            _identifiers++;
            return;
        }
        var word = Encoding.UTF8.GetString(bytes).ToLowerInvariant();
        if (!_started)
        {
            _firstWord = word;
            _copyStatement = word == "copy";
        }
        if (_uncertainStart && word == "copy") throw Refuse("has a COPY inside a function body where psql versions disagree on where statements end");
        _uncertainStart = false;
        // CREATE DATABASE name: a \connect may name it later. An unquoted name is folded to lower case, as the server does.
        if (_createDatabase == 1)
        {
            _created.Add(word);
            _createDatabase = 0;
        }
        else if (_identifiers == 1 && _firstWord == "create" && word == "database") _createDatabase = 1;
        Started(' ');
        foreach (var ch in word) Note(ch);
        if (word is "create" or "function" or "procedure" or "or" or "replace" && _identifiers < f.Length) f[_identifiers] = word[0];
        else if (_identifiers < f.Length) f[_identifiers] = '\0';
        _identifiers++;
        inFunction = f[0] == 'c' && (f[1] is 'f' or 'p' || (f[1] == 'o' && f[2] == 'r' && f[3] is 'f' or 'p'));
        if (!inFunction || _parens != 0) return;
        if (word == "begin") _beginDepth++;
        else if (word == "case" && _beginDepth > 0) _beginDepth++;
        else if (word == "end" && _beginDepth > 0) _beginDepth--;
    }

    private void Started(char c)
    {
        if (!_started)
        {
            _started = true;
            Array.Clear(_firstLetters);
            _beginDepth = 0;
        }
        Note(c);
    }

    /// <summary>The statement's tail, kept for a COPY only (its end must be FROM stdin).</summary>
    private void Note(char c)
    {
        if (!_copyStatement || c == ' ' && (_tail.Length == 0 || _tail[^1] == ' ')) return;
        _tail.Append(c);
        if (_tail.Length > 64) _tail.Remove(0, _tail.Length - 32);
    }

    /// <summary>A line that starts with a backslash between statements: only what pg_dump and pg_dumpall write.</summary>
    private string? MetaCommand(ReadOnlySpan<byte> line)
    {
        var text = Encoding.UTF8.GetString(line).TrimEnd('\r', ' ', '\t');
        var space = text.IndexOf(' ');
        var command = space < 0 ? text : text[..space];
        var argument = space < 0 ? "" : text[(space + 1)..].Trim();
        var afterEncoding = _afterEncoding;
        _afterEncoding = false;
        switch (command)
        {
            case "\\restrict" or "\\unrestrict" when argument.Length > 0 && argument.All(char.IsAsciiLetterOrDigit):
                // pg_dump's own lock, with a key the script carries: ours (written first) stands in for it.
                return _key is null ? null : "";
            case "\\encoding" when argument == "SQL_ASCII":
                // pg_dump (minor releases from February 2025 on) writes it right before a \connect to a name that needs quoting.
                _afterEncoding = true;
                return _key is null ? null : $"\\unrestrict {_key}\n{text}";
            case "\\connect":
                var database = ConnectTarget(argument, afterEncoding)
                    ?? throw Refuse($"runs {Printable(line)}, which is not a \\connect pg_dump writes: a dump may not connect as another " +
                        "user, to another host or port, or with connection settings of its own");
                if (database != _database && !_created.Contains(database))
                    throw Refuse($"runs \\connect to database {Printable(Encoding.UTF8.GetBytes(database))}, which is neither the database " +
                        $"restored into{(_database is null ? "" : $" ({_database})")} nor one the script created");
                return _key is null ? null : $"{(afterEncoding ? "" : $"\\unrestrict {_key}\n")}{text}\n\\restrict {_key}";
            default:
                throw Refuse($"runs the psql meta-command {Printable(line)}, which pg_dump does not write");
        }
    }

    /// <summary>
    /// The database a <c>\connect</c> argument names, when it is in one of the two forms pg_dump and pg_dumpall write
    /// (appendPsqlMetaConnect, 13 to 18): <c>\connect NAME</c> or <c>\connect "NAME"</c> for a name of ASCII letters, digits,
    /// _ and . (pg_dumpall also writes <c>\connect template1</c> and <c>\connect postgres</c>), else, after
    /// <c>\encoding SQL_ASCII</c> from the February 2025 minor releases on,
    /// <c>\connect -reuse-previous=on "dbname='NAME'"</c> with " doubled and ' and \ backslash-escaped. Both reuse the
    /// session's user, host and port. Null for anything else: another user, host, port, a connection string or URI.
    /// </summary>
    private static string? ConnectTarget(string argument, bool afterEncoding)
    {
        const string Reuse = "-reuse-previous=on \"dbname='";
        if (!argument.StartsWith(Reuse, StringComparison.Ordinal))
        {
            var bare = argument.Length > 2 && argument[0] == '"' && argument[^1] == '"' ? argument[1..^1] : argument;
            return !afterEncoding && bare.Length > 0 && bare.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.') ? bare : null;
        }
        if (!argument.EndsWith("'\"", StringComparison.Ordinal) || argument.Length < Reuse.Length + 2) return null;
        var name = new StringBuilder();
        var value = argument[Reuse.Length..^2];
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '"')
            {
                // A double quote inside psql's quoted argument is doubled; a single one would end it.
                if (++i >= value.Length || value[i] != '"') return null;
            }
            else if (c == '\\')
            {
                // appendConnStrVal escapes ' and \ only.
                if (++i >= value.Length || value[i] is not ('\'' or '\\')) return null;
                c = value[i];
            }
            else if (c == '\'') return null;
            name.Append(c);
        }
        // A name libpq could read as connection settings is never pg_dump's.
        var text = name.ToString();
        return text.Length == 0 || text.Contains('=') || text.StartsWith("postgres://", StringComparison.Ordinal)
            || text.StartsWith("postgresql://", StringComparison.Ordinal) ? null : text;
    }

    /// <summary>CREATE DATABASE "name": the quoted name at the start of <paramref name="quoted"/>, when it ends on this line.</summary>
    private void CreatedDatabase(ReadOnlySpan<byte> quoted)
    {
        _createDatabase = 0;
        var name = new StringBuilder();
        var text = Encoding.UTF8.GetString(quoted);
        for (var i = 1; i < text.Length; i++)
        {
            if (text[i] != '"') name.Append(text[i]);
            else if (i + 1 < text.Length && text[i + 1] == '"') name.Append(text[++i]);
            else
            {
                _created.Add(name.ToString());
                return;
            }
        }
    }

    private CorruptObjectException Refuse(string why) =>
        new($"{_what} is refused: line {_lineNo.ToString(CultureInfo.InvariantCulture)} {why}");

    private static string Printable(ReadOnlySpan<byte> text)
    {
        var s = Encoding.UTF8.GetString(text[..Math.Min(text.Length, 40)]);
        return "'" + new string(s.Select(c => char.IsControl(c) ? '?' : c).ToArray()) + (text.Length > 40 ? "...'" : "'");
    }

    /// <summary>The length of a dollar-quote delimiter at the start of <paramref name="s"/> ($$ or $tag$), else 0.</summary>
    private static int DollarTag(ReadOnlySpan<byte> s)
    {
        if (s.Length >= 2 && s[1] == '$') return 2;
        if (s.Length < 3 || !IsIdentStart(s[1])) return 0;
        for (var i = 2; i < s.Length; i++)
        {
            if (s[i] == '$') return i + 1;
            if (!IsIdentStart(s[i]) && !char.IsAsciiDigit((char)s[i])) return 0;
        }
        return 0;
    }

    private static bool IsIdentStart(byte c) => char.IsAsciiLetter((char)c) || c == '_' || c >= 0x80;

    private static bool IsIdent(byte c) => IsIdentStart(c) || char.IsAsciiDigit((char)c) || c == '$';

    private static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\f' or (byte)'\v';

    private sealed class GuardStream(PsqlScript script, Stream? inner) : WriteOnlyStream
    {
        private readonly ArrayBufferWriter<byte> _out = new(1 << 16);
        private bool _begun;
        private bool _refused;

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            if (_refused) return;
            Begin();
            try
            {
                script.Write(buffer.Span, inner is null ? null : _out);
            }
            catch (CorruptObjectException)
            {
                _refused = true; // disposing must not scan the refused line again and replace this error
                throw;
            }
            await DrainAsync(ct).ConfigureAwait(false);
        }

        private void Begin()
        {
            if (_begun) return;
            _begun = true;
            if (inner is not null) _out.Write(Encoding.ASCII.GetBytes($"\\restrict {script._key}\n"));
        }

        private async ValueTask DrainAsync(CancellationToken ct)
        {
            if (inner is null || _out.WrittenCount == 0) return;
            await inner.WriteAsync(_out.WrittenMemory, ct).ConfigureAwait(false);
            _out.ResetWrittenCount();
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() => inner?.Flush();
        public override Task FlushAsync(CancellationToken ct) => inner?.FlushAsync(ct) ?? Task.CompletedTask;

        /// <summary>Scans a last line that had no newline; call once, at the end (a refused one raises here).</summary>
        public override async ValueTask DisposeAsync()
        {
            if (_refused) return;
            Begin();
            script.Complete(inner is null ? null : _out);
            await DrainAsync(CancellationToken.None).ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}
