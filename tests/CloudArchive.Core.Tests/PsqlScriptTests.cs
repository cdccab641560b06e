using System.Text;
using CloudArchive.Core.Dump;
using CloudArchive.Core.Pipeline;

namespace CloudArchive.Core.Tests;

/// <summary>A plain dump from the store reaches psql only without meta-commands of its own.</summary>
public sealed class PsqlScriptTests
{
    // What pg_dump 15.18 writes (restrict key shortened), with the constructs a real schema has.
    private const string PgDumpOutput = """
        --
        -- PostgreSQL database dump
        --

        \restrict gGG71MiICDfY2YpVjFX8S0oCKIL

        SET client_encoding = 'UTF8';
        SET standard_conforming_strings = on;
        SELECT pg_catalog.set_config('search_path', '', false);
        CREATE FUNCTION public.f(a integer) RETURNS text
            LANGUAGE plpgsql
            AS $_$
        BEGIN
          RETURN E'back\\slash' || $1 || '\d+';  -- a \ here is inside the dollar quote
        END $_$;
        CREATE FUNCTION public.g(integer) RETURNS integer
            LANGUAGE sql
            BEGIN ATOMIC
         SELECT ($1 + 1);
        END;
        /* a comment with \! and a /* nested */ one */
        CREATE TABLE public."we;ird\" (
            "c""ol" text DEFAULT 'it''s \n not an escape' CHECK (("c""ol" ~ '^\w+$'::text))
        );
        COMMENT ON TABLE public."we;ird\" IS 'a $$ in a string';
        COPY public."we;ird\" ("c""ol") FROM stdin;
        a\\b\tc
        \! this is a row, not a command
        '
        \.
        COPY public.copy (copy) FROM stdin;
        \N
        \.
        SELECT pg_catalog.lowrite(0, '\x4142');

        \unrestrict gGG71MiICDfY2YpVjFX8S0oCKIL

        """;

    /// <summary>The script checked, then filtered, for a restore into database shop.</summary>
    private static async Task<string> CheckAsync(string script)
    {
        await using (var check = PsqlScript.Check("dump test", "shop"))
            await check.WriteAsync(Encoding.UTF8.GetBytes(script));
        using var output = new MemoryStream();
        await using (var filter = PsqlScript.Filter(output, "dump test", "k3y", "shop"))
            await filter.WriteAsync(Encoding.UTF8.GetBytes(script));
        return Encoding.UTF8.GetString(output.ToArray());
    }

    private static async Task<string> RefusedAsync(string script)
    {
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() => CheckAsync(script));
        return e.Message;
    }

    [Fact]
    public async Task WhatPgDumpWritesPassesAndReachesPsqlBehindOurRestrictKey()
    {
        var fed = await CheckAsync(PgDumpOutput);

        var lines = fed.Split('\n');
        Assert.Equal("\\restrict k3y", lines[0]);
        // pg_dump's own restrict lines become blank lines; everything else is unchanged, row data included.
        Assert.DoesNotContain(lines, l => l.StartsWith("\\restrict gGG", StringComparison.Ordinal) || l.StartsWith("\\unrestrict", StringComparison.Ordinal));
        Assert.Equal(PgDumpOutput.Split('\n').Length + 1, lines.Length);
        Assert.Contains("\\! this is a row, not a command", lines);
        Assert.Contains("CREATE FUNCTION public.f(a integer) RETURNS text", lines);
    }

    [Theory]
    [InlineData("SELECT 1;\n\\! id > /tmp/owned\n", 2, "\\!")]
    [InlineData("SELECT 1; \\! id\n", 1, "\\!")]
    [InlineData("\\o |sh\nSELECT 'x';\n", 1, "\\o")]
    [InlineData("SELECT 1;\n\\copy t from program 'id'\n", 2, "\\copy")]
    [InlineData("SELECT 'a'\n\\g /tmp/x\n", 2, "\\g")]
    [InlineData("COPY t FROM stdin;\nrow\n\\.\n\\! id\n", 4, "\\!")]
    [InlineData("SELECT $$ x $$ \\! id\n", 1, "\\!")]
    [InlineData("SELECT 1 /* c */ \\! id\n", 1, "\\!")]
    [InlineData("\\connect `id` db\n", 1, "\\connect")]
    [InlineData("\\connect shop \\! id\n", 1, "\\connect")]
    [InlineData("\\restrict key with spaces\n", 1, "\\restrict")]
    public async Task AMetaCommandPgDumpDoesNotWriteIsRefusedWithItsLine(string script, int line, string shown)
    {
        var message = await RefusedAsync(script);
        Assert.Contains($"line {line} ", message);
        Assert.Contains(shown, message);
    }

    [Theory]
    [InlineData("COPY t TO PROGRAM 'id';\n")]
    [InlineData("copy t from '/etc/passwd';\n")]
    [InlineData("COPY t FROM PROGRAM 'id';\n")]
    public async Task ACopyOtherThanFromStdinIsRefused(string script)
    {
        Assert.Contains("COPY to or from something other than stdin", await RefusedAsync(script));
    }

    [Fact]
    public async Task TextAfterCopyOnItsLineIsRefused()
    {
        // psql would read the rest of the line, not the data below, as the statement after COPY.
        Assert.Contains("after a COPY", await RefusedAsync("COPY t FROM stdin; SELECT 1;\nrow\n\\.\n"));
    }

    [Theory]
    [InlineData("SELECT 'abc\\';\n\\! id\nSELECT '';\n")]  // with standard_conforming_strings off the string goes on
    [InlineData("SELECT E'\\'' ;\n")]
    public async Task AQuoteRightAfterABackslashIsRefusedAsAmbiguous(string script)
    {
        Assert.Contains("quote right after a backslash", await RefusedAsync(script));
    }

    [Fact]
    public async Task ANulByteIsRefused()
    {
        Assert.Contains("NUL", await RefusedAsync("SELECT 'a\0';\n"));
    }

    [Fact]
    public async Task ACopyWherePsqlVersionsDisagreeOnTheStatementIsRefused()
    {
        var script = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; COPY t FROM stdin; END;\n\\! id\n";
        Assert.Contains("COPY inside a function body", await RefusedAsync(script));
    }

    [Fact]
    public async Task ConnectIsLetThroughByLiftingOurRestrictionAroundIt()
    {
        var fed = await CheckAsync("SELECT 1;\n\\connect -reuse-previous=on \"dbname='shop'\"\nSELECT 2;\n");
        Assert.Equal("\\restrict k3y\nSELECT 1;\n\\unrestrict k3y\n\\connect -reuse-previous=on \"dbname='shop'\"\n\\restrict k3y\nSELECT 2;\n", fed);
    }

    [Theory]
    [InlineData("\\connect shop\n")]
    [InlineData("\\connect \"shop\"\n")]
    // pg_dump 15.18 --create of a database named odd 'na"me\x: the name needs quoting, so \encoding first, then the long form.
    [InlineData("CREATE DATABASE \"odd 'na\"\"me\\x\" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';\n" +
        "\\unrestrict 6LMLIK0L3sPk\n\\encoding SQL_ASCII\n\\connect -reuse-previous=on \"dbname='odd \\'na\"\"me\\\\x'\"\n\\restrict 6LMLIK0L3sPk\n")]
    // pg_dumpall: databases it created, named plainly and quoted.
    [InlineData("CREATE DATABASE plain_name WITH TEMPLATE = template0;\n\\connect plain_name\nCREATE DATABASE \"Shop\";\n\\connect \"Shop\"\n")]
    public async Task ConnectInTheFormsPgDumpWritesToTheTargetOrACreatedDatabasePasses(string script)
    {
        var fed = await CheckAsync(script);
        Assert.Contains("\n\\unrestrict k3y\n\\", fed);
        Assert.Matches(@"\\connect [^\n]+\n\\restrict k3y\n", fed);
    }

    [Theory]
    [InlineData("\\connect shop postgres\n", "not a \\connect pg_dump writes")]
    [InlineData("\\connect - postgres\n", "not a \\connect pg_dump writes")]
    [InlineData("\\connect \"host=203.0.113.9 port=5432\"\n", "not a \\connect pg_dump writes")]
    [InlineData("\\connect -reuse-previous=on \"dbname='shop' host='203.0.113.9'\"\n", "not a \\connect pg_dump writes")]
    [InlineData("\\connect -reuse-previous=on \"dbname='host=203.0.113.9'\"\n", "not a \\connect pg_dump writes")]
    [InlineData("\\connect postgresql://203.0.113.9/shop\n", "not a \\connect pg_dump writes")]
    [InlineData("\\connect shop 127.0.0.1 5433\n", "not a \\connect pg_dump writes")]
    [InlineData("\\c shop\n", "meta-command")]
    [InlineData("\\connect postgres\n", "neither the database restored into (shop)")]
    [InlineData("CREATE TABLE db (x int);\n\\connect db\n", "neither the database")]
    [InlineData("\\encoding SQL_ASCII\nSELECT 1;\n", "\\encoding SQL_ASCII without")]
    [InlineData("\\encoding SJIS\n\\connect shop\n", "meta-command")]
    public async Task AConnectToAnotherUserHostOrDatabaseIsRefused(string script, string why)
    {
        var message = await RefusedAsync(script);
        Assert.Contains(why, message);
        Assert.Matches("line [12] ", message);
    }

    [Theory]
    [InlineData("DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''id'''; END $$;\n")]
    [InlineData("CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $_$\nBEGIN\n  copy (select 1) to\n    program 'id';\nEND $_$;\n")]
    [InlineData("DO $$ BEGIN EXECUTE 'Copy t To ' || 'Program ''id'''; END $$;\n")]
    [InlineData("SELECT query_to_xml('copy t from program ''id''', true, true, '');\n")]
    [InlineData("DO 'BEGIN EXECUTE ''COPY t TO \"program\" ''''id''''''; END';\n")]
    public async Task ACopyProgramInsideAStatementIsRefused(string script)
    {
        Assert.Contains("COPY ... PROGRAM inside a statement", await RefusedAsync(script));
    }

    [Theory]
    [InlineData("COPY public.courses (id, program, \"from\") FROM stdin;\n1\tcopy to program\tx\n\\.\n")]
    [InlineData("COMMENT ON TABLE public.t IS 'a copy of the program list';\n")]
    [InlineData("CREATE VIEW public.v AS SELECT copy FROM public.program;\n")]
    [InlineData("SELECT 'copy';\n-- to program\nSELECT 'program';\n")]
    [InlineData("CREATE FUNCTION f() RETURNS SETOF text LANGUAGE sql AS $$ SELECT name FROM program $$;\n")]
    public async Task WordsThatOnlyLookLikeCopyProgramPass(string script)
    {
        await CheckAsync(script);
    }

    [Fact]
    public async Task PgRestoresScriptIsCheckedForCopyProgramOnly()
    {
        static async Task Script(string script)
        {
            await using var check = PsqlScript.CheckRestoreScript("dump test");
            await check.WriteAsync(Encoding.UTF8.GetBytes(script));
        }
        // No psql reads it: backslashes are text, and standard_conforming_strings is on.
        await Script("\\restrict abc\nCREATE TABLE t (a text DEFAULT 'x\\'::text);\n\\connect other\nSELECT 1;\n");
        var e = await Assert.ThrowsAsync<CorruptObjectException>(() =>
            Script("SET standard_conforming_strings = on;\nCREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql\n    AS $$ BEGIN COPY t TO PROGRAM 'id'; END $$;\n"));
        Assert.Contains("line 3 has a COPY ... PROGRAM", e.Message);
    }

    [Fact]
    public async Task ALastLineWithoutANewlineIsCheckedToo()
    {
        Assert.Contains("line 2", await RefusedAsync("SELECT 1;\n\\! id"));
    }

    [Theory]
    [InlineData("15.18 (Debian 15.18-0+deb12u1)", true)]
    [InlineData("15.14", true)]
    [InlineData("15.13", false)]
    [InlineData("13.22", true)]
    [InlineData("14.18", false)]
    [InlineData("16.10", true)]
    [InlineData("17.5", false)]
    [InlineData("18beta1", true)]
    [InlineData("12.22", false)]
    [InlineData("garbage", false)]
    public void RestrictedModeIsKnownByVersion(string version, bool supported) =>
        Assert.Equal(supported, PsqlScript.SupportsRestrict(version));
}
