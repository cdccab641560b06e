using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// SQL dumps on a real PostgreSQL 15: dump-push streams pg_dump into the store, dump-restore verifies and
/// restores. Every dump that should work is restored into a new database and compared with its source.
/// </summary>
public sealed class DumpTests
{
    /// <summary>Every type the issue names, a large object, a sequence, a view, a function, indexes and a foreign key.</summary>
    private const string VariedSchema = """
        create table items (
            id int primary key, price numeric(20,6), huge numeric, name text, payload bytea,
            doc jsonb, tags text[], scores int[], at timestamptz);
        insert into items
            select g, g * 1.000001, (10::numeric ^ 30) + g, 'ünïcødé ✓ 日本語 ' || g || E' tab\there',
                   decode(md5(g::text), 'hex') || '\x00ff'::bytea,
                   jsonb_build_object('n', g, 'nested', jsonb_build_object('a', array[g, g + 1]), 'quote', 'é"\'),
                   array['a' || g, 'ü', null], array[g, -g],
                   timestamptz '2024-02-29 12:34:56.789+05:30' + g * interval '1 hour 1 second'
            from generate_series(1, 2000) g;
        insert into items (id) values (0);
        create table orders (id bigserial primary key, item_id int not null references items(id), qty int check (qty > 0));
        insert into orders (item_id, qty) select g % 2000 + 1, g % 7 + 1 from generate_series(1, 5000) g;
        create sequence invoice_no start 1000 increment 7;
        select setval('invoice_no', 1337);
        create view expensive as select id, name, price from items where price > 1000;
        create function item_total(p_item int) returns bigint language sql stable
            as $$ select coalesce(sum(qty), 0) from orders where item_id = p_item $$;
        create index items_doc on items using gin (doc);
        create index items_name on items (name);
        create table docs (id int primary key, content oid);
        insert into docs values (1, lo_from_bytea(0, convert_to(repeat('large object ✓ ', 5000), 'UTF8') || '\x00010203ff'::bytea));
        """;

    /// <summary>One line per thing compared: each table's rows, the large object, sequences, the view, the function, indexes, constraints.</summary>
    private static readonly string[] Fingerprint =
    [
        .. new[] { "items", "orders", "docs" }.Select(t =>
            $"select '{t} ' || count(*) || ' ' || md5(coalesce(string_agg(x::text, E'\\n' order by x::text), '')) from {t} x"),
        "select 'lo ' || md5(lo_get(content)) || ' ' || length(lo_get(content)) from docs",
        "select 'seq ' || last_value || ' ' || is_called from invoice_no",
        "select 'serial ' || last_value || ' ' || is_called from orders_id_seq",
        "select 'view ' || count(*) || ' ' || md5(string_agg(v::text, ',' order by id)) from expensive v",
        "select 'function ' || item_total(5) || ' ' || item_total(1999)",
        "select 'indexes ' || string_agg(indexdef, '; ' order by indexname) from pg_indexes where schemaname = 'public'",
        "select 'constraints ' || string_agg(conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated, '; ' order by conname) from pg_constraint where connamespace = 'public'::regnamespace",
    ];

    private sealed record Setup(string Work, TestStore Store, PgCluster Cluster);

    private static async Task<Setup> StartAsync(string name, string storeKind)
    {
        var work = TestEnv.NewWorkDir(name);
        var store = TestStore.Create(storeKind, work);
        var cluster = await PgCluster.InitAsync(Path.Combine(work, "pg"));
        await cluster.StartAsync();
        return new Setup(work, store, cluster);
    }

    private static async Task CreateVariedDatabaseAsync(PgCluster cluster, string database)
    {
        await cluster.SqlAsync($"create database {database}");
        await cluster.SqlAsync(VariedSchema, database);
    }

    private static async Task<List<string>> FingerprintAsync(PgCluster cluster, string database)
    {
        var lines = new List<string>();
        foreach (var q in Fingerprint) lines.Add(await cluster.SqlAsync(q, database));
        return lines;
    }

    /// <summary>cloudarchive as the cluster owner, pointed at the cluster by PGHOST/PGPORT and at the store by its config file.</summary>
    private static async Task<ProcResult> RunAsync(Setup s, string[] args, Dictionary<string, string?>? env = null, PgCluster? cluster = null)
    {
        var c = cluster ?? s.Cluster;
        var vars = new Dictionary<string, string?> { ["PGHOST"] = c.Dir, ["PGPORT"] = c.Port.ToString() };
        if (env is not null) foreach (var (k, v) in env) vars[k] = v;
        var r = await Proc.AsPostgresAsync([TestEnv.Binary, .. args, "--config", s.Store.ConfigFile], vars, null, TimeSpan.FromMinutes(10));
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        return r;
    }

    private static async Task<string> PushAsync(Setup s, params string[] args)
    {
        var r = await RunAsync(s, ["dump-push", .. args]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.StartsWith("dump 20", r.Stdout);
        return r.Stdout.Split(' ', ':')[1];
    }

    private static async Task<ProcResult> RestoreAsync(Setup s, params string[] args)
    {
        var log = Path.Combine(s.Work, $"restore-{Guid.NewGuid():N}.log");
        return await RunAsync(s, ["dump-restore", .. args, "--log", log]);
    }

    private static async Task AssertOneErrorLineAsync(ProcResult r, int exitCode, params string[] contains)
    {
        Assert.True(r.ExitCode == exitCode, $"expected exit {exitCode}: {r}");
        var lines = r.StderrLines;
        Assert.True(lines.Length == 1, "expected one line on stderr: " + r);
        Assert.StartsWith("cloudarchive: error: ", lines[0]);
        foreach (var c in contains) Assert.Contains(c, lines[0]);
        await Task.CompletedTask;
    }

    private static async Task AssertNoDumpsAsync(Setup s)
    {
        var list = await RunAsync(s, ["dump-list"]);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Equal("no dumps", list.Stdout.Trim());
        var json = await RunAsync(s, ["dump-list", "--json"]);
        Assert.Equal(0, JsonDocument.Parse(json.Stdout).RootElement.GetArrayLength());
    }

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task DumpOfVariedTypesRestoresIdenticallyInEveryFormat(string storeKind)
    {
        var s = await StartAsync("dump-formats-" + storeKind, storeKind);
        await using var _ = s.Cluster;
        await CreateVariedDatabaseAsync(s.Cluster, "shop");
        var expected = await FingerprintAsync(s.Cluster, "shop");

        foreach (var format in new[] { "custom", "plain", "directory" })
        {
            var id = await PushAsync(s, "--dbname", "shop", "--format", format);
            var restored = await RestoreAsync(s, id, "--dbname", "shop_" + format, "--create");
            Assert.True(restored.ExitCode == 0, $"{format}: {restored}");
            Assert.Contains($"into shop_{format} with {(format == "plain" ? "psql" : "pg_restore")}", restored.Stdout);
            Assert.Equal(expected, await FingerprintAsync(s.Cluster, "shop_" + format));

            if (format != "plain")
            {
                // Parallel restore: the verified dump is spooled (directory format extracted) for pg_restore -j.
                var parallel = await RestoreAsync(s, id, "--dbname", $"shop_{format}_j2", "--create", "--jobs", "2");
                Assert.True(parallel.ExitCode == 0, $"{format} --jobs 2: {parallel}");
                Assert.Equal(expected, await FingerprintAsync(s.Cluster, $"shop_{format}_j2"));
            }
        }

        var list = await RunAsync(s, ["dump-list", "--json"]);
        var records = JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray().ToList();
        Assert.Equal(["directory", "plain", "custom"], records.Select(r => r.GetProperty("format").GetString()));
        Assert.Equal(["tar", "plain", "custom"], records.Select(r => r.GetProperty("streamFormat").GetString()));
        foreach (var r in records)
        {
            Assert.Equal("shop", r.GetProperty("database").GetString());
            Assert.Equal(15, r.GetProperty("serverVersionNum").GetInt32() / 10000);
            Assert.StartsWith("15.", r.GetProperty("pgDumpVersion").GetString());
            Assert.Matches("^[0-9a-f]{64}$", r.GetProperty("sha256").GetString());
            Assert.True(r.GetProperty("storedSize").GetInt64() < r.GetProperty("size").GetInt64());
            Assert.True(r.GetProperty("endTime").GetDateTimeOffset() >= r.GetProperty("startTime").GetDateTimeOffset());
        }
    }

    [Fact]
    public async Task GlobalsRestoreRolesIntoAFreshCluster()
    {
        var s = await StartAsync("dump-globals", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("""
            create role app_owner login password 'owner-pw' createdb connection limit 5 valid until '2030-01-01 00:00:00+00';
            create role app_reader nologin;
            create role "Mixed Case ✓" login replication;
            create role auditor superuser nologin bypassrls;
            grant app_reader to app_owner;
            grant app_reader to "Mixed Case ✓" with admin option;
            alter role app_owner set work_mem = '8MB';
            """);
        const string Roles = "select string_agg(concat_ws(' ', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, rolpassword), E'\\n' order by rolname) from pg_authid where rolname !~ '^pg_'";
        const string Members = "select string_agg(r.rolname || ' > ' || m.rolname || ' ' || a.admin_option, E'\\n' order by r.rolname, m.rolname) from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member where r.rolname !~ '^pg_'";
        const string Settings = "select string_agg(r.rolname || ' ' || array_to_string(s.setconfig, ','), E'\\n') from pg_db_role_setting s join pg_roles r on r.oid = s.setrole";
        var expected = new[] { await s.Cluster.SqlAsync(Roles), await s.Cluster.SqlAsync(Members), await s.Cluster.SqlAsync(Settings) };

        var id = await PushAsync(s, "--globals");

        await using var fresh = await PgCluster.InitAsync(Path.Combine(s.Work, "fresh"));
        await fresh.StartAsync();
        // The latest globals dump, restored into the fresh cluster (PGHOST/PGPORT point at it).
        var r = await RunAsync(s, ["dump-restore", "latest", "--globals", "--log", Path.Combine(s.Work, "globals.log")], cluster: fresh);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"restored dump {id} (globals)", r.Stdout);
        Assert.Equal(expected, new[] { await fresh.SqlAsync(Roles), await fresh.SqlAsync(Members), await fresh.SqlAsync(Settings) });
        Assert.Contains("app_owner", expected[0]);
    }

    [Theory, MemberData(nameof(TestStore.Kinds), MemberType = typeof(TestStore))]
    public async Task FailingPgDumpExitsWithItsReasonAndLeavesNothingListed(string storeKind)
    {
        var s = await StartAsync("dump-failures-" + storeKind, storeKind);
        await using var _ = s.Cluster;

        var unknown = await RunAsync(s, ["dump-push", "--dbname", "no_such_db"]);
        // The server's version is read first (psql), so an unknown database is found before pg_dump runs.
        await AssertOneErrorLineAsync(unknown, 9, "cannot read the server's version before dumping: psql failed: ", "database \"no_such_db\" does not exist");

        // A user who may not read one table.
        await s.Cluster.SqlAsync("create database app");
        await s.Cluster.SqlAsync("create role clerk login; create table public_notes (id int); create table secrets (id int, v text); grant select on public_notes to clerk", "app");
        var denied = await RunAsync(s, ["dump-push", "--dbname", "dbname=app user=clerk"]);
        await AssertOneErrorLineAsync(denied, 9, "pg_dump failed: ", "permission denied for table secrets");
        await AssertNoDumpsAsync(s);

        // The server stops while pg_dump streams a bigger table (200 MiB of hex, about 100 MiB after zstd):
        // half-way through its COPY, tens of MiB are in the store's hands (S3 multipart parts, Azure blocks).
        await s.Cluster.SqlAsync("create table big (id int, v text); insert into big select g, "
            + string.Join(" || ", Enumerable.Range(0, 10).Select(i => $"md5(g || '-{i}')")) + " from generate_series(1, 600000) g", "app");
        var push = RunAsync(s, ["dump-push", "--dbname", "app"]);
        var clock = Stopwatch.StartNew();
        while (!long.TryParse(await s.Cluster.SqlAsync("select max(tuples_processed) from pg_stat_progress_copy"), out var copied) || copied < 300000)
        {
            if (push.IsCompleted) Assert.Fail("dump-push ended before pg_dump was half-way through the big table: " + await push);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), "pg_dump never got half-way through the big table");
        }
        await s.Cluster.StopAsync("immediate");
        var stopped = await push;
        await AssertOneErrorLineAsync(stopped, 9, "pg_dump failed: ", "\"big\"");

        await AssertNoDumpsAsync(s);
        if (storeKind == "local")
        {
            var dir = Path.Combine(new Uri(s.Store.Url).LocalPath, "dumps");
            var files = Directory.Exists(dir) ? Directory.GetFiles(dir, "*", SearchOption.AllDirectories) : [];
            Assert.True(files.Length == 0, "left in the store: " + string.Join(", ", files));
        }

        // The same database dumps fine once the server is back: the failures left nothing in the way.
        await s.Cluster.StartAsync();
        await s.Cluster.SqlAsync("drop table big", "app");
        var id = await PushAsync(s, "--dbname", "app");
        var list = await RunAsync(s, ["dump-list"]);
        Assert.Single(list.Stdout.Trim().Split('\n'));
        Assert.StartsWith(id, list.Stdout);
    }

    [Fact]
    public async Task RestoreOverExistingObjectsFailsWithoutCleanAndReplacesThemWithIt()
    {
        var s = await StartAsync("dump-clean", "local");
        await using var _ = s.Cluster;
        await CreateVariedDatabaseAsync(s.Cluster, "shop");
        var expected = await FingerprintAsync(s.Cluster, "shop");
        var custom = await PushAsync(s, "--dbname", "shop");
        var directory = await PushAsync(s, "--dbname", "shop", "--format", "directory");
        var plain = await PushAsync(s, "--dbname", "shop", "--format", "plain");

        // The target has the objects, and a change that must survive a refused restore.
        var secret = "pg-pass-" + Guid.NewGuid().ToString("N")[..12];
        var env = new Dictionary<string, string?> { ["PGPASSWORD"] = secret };
        Assert.Equal("0", (await RunAsync(s, ["dump-restore", custom, "--dbname", "copy", "--create", "--log", Path.Combine(s.Work, "first.log")], env)).ExitCode.ToString());
        await s.Cluster.SqlAsync("update items set name = 'changed in the target' where id = 1; insert into orders (item_id, qty) values (1, 1)", "copy");
        var changed = await FingerprintAsync(s.Cluster, "copy");
        Assert.NotEqual(expected, changed);

        foreach (var (id, program) in new[] { (custom, "pg_restore"), (directory, "pg_restore"), (plain, "psql") })
        {
            var log = Path.Combine(s.Work, $"refused-{id}.log");
            var refused = await RunAsync(s, ["dump-restore", id, "--dbname", $"dbname=copy password={secret}", "--log", log], env);
            await AssertOneErrorLineAsync(refused, 9, $"{program} failed: ", "already exists", "nothing was restored", "--clean");
            Assert.Equal(changed, await FingerprintAsync(s.Cluster, "copy"));
            Assert.DoesNotContain(secret, refused.Stdout + refused.Stderr + File.ReadAllText(log));
        }

        var plainClean = await RestoreAsync(s, plain, "--dbname", "copy", "--clean");
        await AssertOneErrorLineAsync(plainClean, 2, "--clean");

        foreach (var id in new[] { custom, directory })
        {
            await s.Cluster.SqlAsync("update items set name = 'changed again' where id = 2", "copy");
            var cleaned = await RestoreAsync(s, id, "--dbname", "copy", "--clean");
            Assert.True(cleaned.ExitCode == 0, cleaned.ToString());
            Assert.Equal(expected, await FingerprintAsync(s.Cluster, "copy"));
        }

        var exists = await RestoreAsync(s, custom, "--dbname", "copy", "--create");
        await AssertOneErrorLineAsync(exists, 9, "already exists");
    }

    [Fact]
    public async Task CorruptStoredDumpIsRefusedAndNothingIsRestored()
    {
        var s = await StartAsync("dump-corrupt", "local");
        await using var _ = s.Cluster;
        await CreateVariedDatabaseAsync(s.Cluster, "shop");
        var plain = await PushAsync(s, "--dbname", "shop", "--format", "plain");
        var custom = await PushAsync(s, "--dbname", "shop");

        foreach (var (id, n) in new[] { (plain, 1), (custom, 2) })
        {
            // Local store file: "CAOBJ1\n", int32 LE header length, JSON metadata, then the zstd data.
            var path = Path.Combine(new Uri(s.Store.Url).LocalPath, "dumps", id, "dump.zst");
            var bytes = File.ReadAllBytes(path);
            var dataStart = 7 + 4 + BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(7));
            bytes[dataStart + (bytes.Length - dataStart) / 2] ^= 0x20;
            File.WriteAllBytes(path, bytes);

            var target = $"target{n}";
            await s.Cluster.SqlAsync($"create database {target}");
            var restore = await RestoreAsync(s, id, "--dbname", target);
            await AssertOneErrorLineAsync(restore, 5, id, "corrupt", "nothing was restored");
            Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_class where relnamespace = 'public'::regnamespace", target));
            Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_largeobject_metadata", target));

            var created = await RestoreAsync(s, id, "--dbname", $"never{n}", "--create");
            await AssertOneErrorLineAsync(created, 5, "corrupt");
            Assert.Equal("0", await s.Cluster.SqlAsync($"select count(*) from pg_database where datname = 'never{n}'"));

            var file = Path.Combine(s.Work, $"fetched-{n}.dump");
            var fetch = await RunAsync(s, ["dump-fetch", id, "--output", file]);
            await AssertOneErrorLineAsync(fetch, 5, "corrupt");
            Assert.False(File.Exists(file));
            Assert.Empty(Directory.GetFiles(s.Work, $".fetched-{n}.dump*"));

            var stdout = await RunAsync(s, ["dump-fetch", id, "--output", "-"]);
            await AssertOneErrorLineAsync(stdout, 5, "corrupt");
            Assert.Equal("", stdout.Stdout);
        }
    }

    [Fact]
    public async Task ListFetchAndLatestFollowTheDatabase()
    {
        var s = await StartAsync("dump-latest", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database alpha");
        await s.Cluster.SqlAsync("create database beta");
        await s.Cluster.SqlAsync("create table marker (v text); insert into marker values ('alpha first')", "alpha");
        await s.Cluster.SqlAsync("create table marker (v text); insert into marker values ('beta only')", "beta");

        var alpha1 = await PushAsync(s, "--dbname", "alpha", "--format", "plain");
        await s.Cluster.SqlAsync("update marker set v = 'alpha second'", "alpha");
        var alpha2 = await PushAsync(s, "--dbname", "alpha", "--format", "plain");
        var beta = await PushAsync(s, "--dbname", "beta", "--format", "plain");
        var globals = await PushAsync(s, "--globals");

        var all = JsonDocument.Parse((await RunAsync(s, ["dump-list", "--json"])).Stdout).RootElement;
        Assert.Equal([globals, beta, alpha2, alpha1], all.EnumerateArray().Select(d => d.GetProperty("id").GetString()));
        Assert.Equal(["globals", "database", "database", "database"], all.EnumerateArray().Select(d => d.GetProperty("kind").GetString()));
        var alphaOnly = JsonDocument.Parse((await RunAsync(s, ["dump-list", "--json", "--dbname", "alpha"])).Stdout).RootElement;
        Assert.Equal([alpha2, alpha1], alphaOnly.EnumerateArray().Select(d => d.GetProperty("id").GetString()));
        var text = await RunAsync(s, ["dump-list", "--dbname", "alpha"]);
        Assert.Equal(2, text.Stdout.Trim().Split('\n').Length);

        // latest --dbname alpha is alpha's newest, though beta's and the globals are newer.
        var fetched = await RunAsync(s, ["dump-fetch", "latest", "--dbname", "alpha", "--output", "-"]);
        Assert.True(fetched.ExitCode == 0, fetched.ToString());
        Assert.Contains("alpha second", fetched.Stdout);
        Assert.DoesNotContain("alpha first", fetched.Stdout);
        Assert.Contains("PostgreSQL database dump", fetched.Stdout);

        var file = Path.Combine(s.Work, "latest.sql");
        var toFile = await RunAsync(s, ["dump-fetch", "latest", "--output", file]);
        Assert.True(toFile.ExitCode == 0, toFile.ToString());
        Assert.Contains("beta only", File.ReadAllText(file));
        var again = await RunAsync(s, ["dump-fetch", "latest", "--output", file]);
        await AssertOneErrorLineAsync(again, 6, "already exists");

        var restored = await RestoreAsync(s, "latest", "--source", "alpha", "--dbname", "alpha_copy", "--create");
        Assert.True(restored.ExitCode == 0, restored.ToString());
        Assert.Contains(alpha2, restored.Stdout);
        Assert.Equal("alpha second", await s.Cluster.SqlAsync("select v from marker", "alpha_copy"));

        var none = await RunAsync(s, ["dump-fetch", "latest", "--dbname", "gamma", "--output", "-"]);
        await AssertOneErrorLineAsync(none, 1, "no dump of database gamma");
        var unknown = await RunAsync(s, ["dump-restore", "20200101T000000Z-abcdef", "--dbname", "x"]);
        await AssertOneErrorLineAsync(unknown, 1, "no dump 20200101T000000Z-abcdef");
    }

    [Fact]
    public async Task ProgressIsDrawnOnATerminalOnlyAndNeverOnStdout()
    {
        var s = await StartAsync("dump-progress", "local");
        await using var _ = s.Cluster;
        // About 300 MiB of dump (a few MiB on disk: values this repetitive are compressed in the table, and by zstd in the store):
        // pg_dump and pg_restore each take over a second with it, so the twice-a-second line is drawn at least once.
        await s.Cluster.SqlAsync("create database big");
        await s.Cluster.SqlAsync("create table t (id int primary key, v text); " +
            "insert into t select g, repeat(md5(g::text), 100) from generate_series(1, 96000) g", "big");
        const string Rows = "select count(*) || ' ' || md5(string_agg(md5(v), '' order by id)) from t";
        var expected = await s.Cluster.SqlAsync(Rows, "big");

        // On a terminal, with stdout redirected as `id=$(cloudarchive dump-push)` does: the progress is on the terminal, stdout has the one line.
        var stdoutFile = Path.Combine(s.Work, "push.out");
        var push = await RunOnTerminalAsync(s, ["dump-push", "--dbname", "big"], stdoutFile);
        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Matches(@"\rpg_dump output [1-9][0-9]* MiB, [0-9]+\.[0-9] MiB/s, [0-9]+ s", push.Stdout);
        var pushed = File.ReadAllText(stdoutFile);
        Assert.Matches(@"^dump [0-9TZ]+-[0-9a-f]+: database big \(custom\), [0-9.]+ MiB stored as [^\r\n]*\n$", pushed);
        var id = pushed.Split(' ', ':')[1];
        // Without a terminal (cron, CI, a log): the summary line only, nothing on stderr.
        var quiet = await RunAsync(s, ["dump-push", "--dbname", "big"]);
        Assert.True(quiet.ExitCode == 0 && quiet.Stderr == "", quiet.ToString());
        Assert.Matches(@"^dump [^\n]*\n$", quiet.Stdout);

        var size = JsonDocument.Parse((await RunAsync(s, ["dump-list", "--json"])).Stdout).RootElement.EnumerateArray()
            .Single(d => d.GetProperty("id").GetString() == id).GetProperty("size").GetInt64();
        var restore = await RunOnTerminalAsync(s, ["dump-restore", id, "--dbname", "copy", "--create", "--log", Path.Combine(s.Work, "tty.log")]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Matches($@"\rpg_restore input [0-9]+ / {size / 1048576.0:0} MiB \([0-9]+%\), [0-9]+\.[0-9] MiB/s, [0-9]+ s, ETA [0-9]+ s", restore.Stdout);
        Assert.Contains($"restored dump {id} (database big (custom)) into copy with pg_restore", restore.Stdout);
        Assert.Equal(expected, await s.Cluster.SqlAsync(Rows, "copy"));

        var plain = await RestoreAsync(s, id, "--dbname", "copy2", "--create");
        Assert.True(plain.ExitCode == 0 && plain.Stderr == "", plain.ToString());
        Assert.Matches($@"^restored dump {id} [^\n]*\n$", plain.Stdout);
        Assert.Equal(expected, await s.Cluster.SqlAsync(Rows, "copy2"));
    }

    /// <summary>
    /// cloudarchive on a pseudo-terminal (util-linux script), as <see cref="RunAsync"/> runs it; Stdout is everything the
    /// terminal showed. With <paramref name="stdoutFile"/>, the command's stdout goes to that file instead (stderr stays on the terminal).
    /// </summary>
    private static async Task<ProcResult> RunOnTerminalAsync(Setup s, string[] args, string? stdoutFile = null)
    {
        static string Quote(string a) => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        var command = string.Join(' ', ((string[])[TestEnv.Binary, .. args, "--config", s.Store.ConfigFile]).Select(Quote));
        if (stdoutFile is not null) command += " > " + Quote(stdoutFile);
        var vars = new Dictionary<string, string?> { ["PGHOST"] = s.Cluster.Dir, ["PGPORT"] = s.Cluster.Port.ToString() };
        var r = await Proc.AsPostgresAsync(["script", "--quiet", "--return", "--command", command, "/dev/null"], vars, null, TimeSpan.FromMinutes(10));
        Secrets.AssertNoneIn(r.Stdout + r.Stderr);
        Assert.DoesNotContain("   at ", r.Stdout);
        return r;
    }

    [Theory]
    [InlineData("\\! touch {0}")]
    [InlineData("SELECT 1 \\o |touch {0}")]
    [InlineData("\\copy (select 1) to program 'touch {0}'")]
    public async Task APlantedPlainDumpCannotRunCommandsOnTheRestoringHost(string payload)
    {
        var s = await StartAsync("dump-planted", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database shop");
        await s.Cluster.SqlAsync("create table t (id int primary key, note text); insert into t select g, 'row ' || g from generate_series(1, 100) g", "shop");
        var real = await PushAsync(s, "--dbname", "shop", "--format", "plain");

        // Someone with write access to the store plants a newer "latest" plain dump: the real script with a command
        // in front of pg_dump's own \restrict line, so only CloudArchive's locks stand between it and a shell.
        var marker = Path.Combine(s.Work, "owned");
        const string forged = "20991231T000000Z-f0f0f0";
        PlantPlainDump(s, real, forged, string.Format(payload, marker));

        var r = await RestoreAsync(s, "latest", "--source", "shop", "--dbname", "victim", "--create");

        await AssertOneErrorLineAsync(r, 5, forged, "line 1", "meta-command", "nothing was restored");
        Assert.False(File.Exists(marker), "the planted dump ran a command");
        Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_database where datname = 'victim'"));
        // The real dump still restores.
        var ok = await RestoreAsync(s, real, "--dbname", "copy", "--create");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal("100", await s.Cluster.SqlAsync("select count(*) from t", "copy"));
    }

    /// <summary>
    /// Plants dump <paramref name="forged"/> as someone with write access to the store would: dump <paramref name="real"/>'s
    /// plain script with <paramref name="prefix"/> in front, and a record that matches it, taken a day later (so it is "latest").
    /// </summary>
    private static void PlantPlainDump(Setup s, string real, string forged, string prefix)
    {
        var store = new LocalStore(new Uri(s.Store.Url).LocalPath);
        var stored = LocalStore.Read(Path.Combine(store.Dir, "dumps", real, "dump.zst"));
        using var decompressor = new ZstdSharp.Decompressor();
        var script = System.Text.Encoding.UTF8.GetBytes(prefix + "\n").Concat(decompressor.Unwrap(stored.Content.Span).ToArray()).ToArray();
        using var compressor = new ZstdSharp.Compressor(3);
        var sha = TestSegments.Sha256(script);
        store.Plant($"dumps/{forged}/dump.zst", compressor.Wrap(script).ToArray(),
            new Dictionary<string, string>(stored.Metadata) { ["sha256"] = sha, ["size"] = script.Length.ToString() });
        var record = System.Text.Json.Nodes.JsonNode.Parse(LocalStore.Read(Path.Combine(store.Dir, "manifest", "dumps", real + ".json")).ContentText)!;
        record["id"] = forged;
        record["key"] = $"dumps/{forged}/dump.zst";
        record["size"] = script.Length;
        record["sha256"] = sha;
        // Newer than the real one, with times that fit (a record from the future is never taken for "latest").
        record["startTime"] = DateTimeOffset.UtcNow;
        record["endTime"] = DateTimeOffset.UtcNow;
        store.Plant($"manifest/dumps/{forged}.json", System.Text.Encoding.UTF8.GetBytes(record.ToJsonString()), []);
    }

    /// <summary>
    /// A planted plain dump cannot leave its database and role: \connect as the superuser, to another host (which would be
    /// sent the restoring role's password) or to another database is refused before anything runs, and so is a COPY ...
    /// PROGRAM inside a DO block or a function body, which a superuser's restore would otherwise run on the server.
    /// </summary>
    [Fact]
    public async Task APlantedPlainDumpStaysInItsDatabaseAndRoleAndRunsNoProgram()
    {
        var s = await StartAsync("dump-planted-connect", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database shop");
        await s.Cluster.SqlAsync("create table t (id int primary key); insert into t select generate_series(1, 100)", "shop");
        var real = await PushAsync(s, "--dbname", "shop", "--format", "plain");
        // Another "server", listening where a planted \connect points: nothing may reach it.
        using var elsewhere = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        elsewhere.Start();
        var port = ((System.Net.IPEndPoint)elsewhere.LocalEndpoint).Port;
        var marker = Path.Combine(s.Work, "owned");
        var env = new Dictionary<string, string?> { ["PGPASSWORD"] = "restoring-role-password" };

        var planted = new (string Payload, string Why)[]
        {
            ("\\connect victim postgres", "not a \\connect pg_dump writes"),
            ($"\\connect \"host=127.0.0.1 port={port} dbname=victim\"", "not a \\connect pg_dump writes"),
            ($"\\connect -reuse-previous=on \"dbname='victim' host='127.0.0.1' port='{port}'\"", "not a \\connect pg_dump writes"),
            ($"\\connect postgresql://127.0.0.1:{port}/victim", "not a \\connect pg_dump writes"),
            ("\\connect postgres", "neither the database restored into (victim)"),
            ($"DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}'''; END $$;", "COPY ... PROGRAM"),
            ($"CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN\n COPY (SELECT 1) TO PROGRAM 'touch {marker}'; END $f$;\nSELECT public.f();",
                "COPY ... PROGRAM"),
        };
        for (var i = 0; i < planted.Length; i++)
        {
            var forged = $"20991231T00000{i}Z-f0f0f0";
            PlantPlainDump(s, real, forged, planted[i].Payload);
            var r = await RunAsync(s, ["dump-restore", forged, "--dbname", "victim", "--create", "--log", Path.Combine(s.Work, $"planted-{i}.log")], env);
            await AssertOneErrorLineAsync(r, 5, forged, planted[i].Why, "nothing was restored");
            Assert.Matches("line [12] ", r.Stderr);
        }
        Assert.False(File.Exists(marker), "a planted dump ran a program");
        Assert.False(elsewhere.Pending(), "a planted dump connected to another server");
        Assert.Equal("0", await s.Cluster.SqlAsync("select count(*) from pg_database where datname = 'victim'"));

        // pg_dump's own form, to the database restored into, is let through.
        PlantPlainDump(s, real, "20991231T000100Z-f0f0f0", "\\connect victim");
        var ok = await RunAsync(s, ["dump-restore", "20991231T000100Z-f0f0f0", "--dbname", "victim", "--create", "--log", Path.Combine(s.Work, "ok.log")], env);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal("100", await s.Cluster.SqlAsync("select count(*) from t", "victim"));
    }

    /// <summary>
    /// pg_dump, pg_dumpall, pg_restore and psql get every setting of --dbname (a conninfo or a URI) and the password only in
    /// their environment: over TCP with a password required, with PGHOST pointing nowhere, every run works and no child's
    /// argv holds the password; and sslmode=require against a server without TLS fails in each program with libpq's error.
    /// </summary>
    [Fact]
    public async Task ChildProgramsGetEveryConnectionSettingAndThePasswordOnlyInTheirEnvironment()
    {
        var s = await StartAsync("dump-child-conn", "local");
        await using var _ = s.Cluster;
        var secret = "pw-" + Guid.NewGuid().ToString("N")[..16];
        await s.Cluster.SqlAsync($"alter role postgres password '{secret}'");
        await Proc.CheckAsync(Proc.AsPostgresAsync(["sh", "-c",
            $"printf 'local all all trust\\nhost all all 127.0.0.1/32 scram-sha-256\\n' > '{s.Cluster.DataDir}/pg_hba.conf'"]));
        await s.Cluster.SqlAsync("select pg_reload_conf()");
        await s.Cluster.SqlAsync("create database shop");
        await s.Cluster.SqlAsync("create table t (id int primary key, v text); insert into t select g, 'row ' || g from generate_series(1, 500) g", "shop");

        // Each program behind a wrapper that writes down its argv, and apart from it, its PGPASSWORD.
        var bin = TestEnv.SharedDir(s.Work, "bin");
        var argv = Path.Combine(s.Work, "argv.log");
        var passwords = Path.Combine(s.Work, "pgpassword.log");
        foreach (var program in new[] { "pg_dump", "pg_dumpall", "pg_restore", "psql" })
        {
            await File.WriteAllTextAsync(Path.Combine(bin, program), "#!/bin/sh\n" +
                $"echo \"$0 $*\" >> '{argv}'\necho \"$0 ${{PGPASSWORD-}}\" >> '{passwords}'\nexec /usr/lib/postgresql/15/bin/{program} \"$@\"\n");
            File.SetUnixFileMode(Path.Combine(bin, program), (UnixFileMode)0b111_101_101);
        }
        var tcp = $"host=127.0.0.1 port={s.Cluster.Port} user=postgres application_name=cloudarchive-test";
        var env = new Dictionary<string, string?> { ["PGHOST"] = "/nonexistent", ["CLOUDARCHIVE_PG_BIN"] = bin };
        async Task<ProcResult> Run(params string[] args)
        {
            var r = await RunAsync(s, args, env);
            Assert.DoesNotContain(secret, r.Stdout + r.Stderr);
            return r;
        }

        var push = await Run("dump-push", "--dbname", $"{tcp} dbname=shop password={secret}");
        Assert.True(push.ExitCode == 0, push.ToString());
        var id = push.Stdout.Split(' ', ':')[1];
        var globals = await Run("dump-push", "--globals", "--dbname", $"postgresql://postgres:{secret}@127.0.0.1:{s.Cluster.Port}/postgres?application_name=x");
        Assert.True(globals.ExitCode == 0, globals.ToString());
        var restore = await Run("dump-restore", id, "--dbname", $"postgresql://postgres@127.0.0.1:{s.Cluster.Port}/copy?password={secret}&application_name=y",
            "--create", "--log", Path.Combine(s.Work, "r.log"));
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(await s.Cluster.SqlAsync("select md5(string_agg(v, ',' order by id)) from t", "shop"),
            await s.Cluster.SqlAsync("select md5(string_agg(v, ',' order by id)) from t", "copy"));

        var calls = await File.ReadAllLinesAsync(argv);
        Assert.DoesNotContain(calls, c => c.Contains(secret, StringComparison.Ordinal));
        // Those that connect (not --version, not pg_restore reading the dump for the check before the restore):
        // psql (the server's version) and pg_dump; psql and pg_dumpall; psql (CREATE DATABASE) and pg_restore.
        var connecting = (await File.ReadAllLinesAsync(passwords)).Zip(calls)
            .Where(p => !p.Second.EndsWith(" --version", StringComparison.Ordinal) && !p.Second.Contains(" --file=- ", StringComparison.Ordinal)).ToList();
        Assert.Equal(6, connecting.Count);
        Assert.All(connecting, p => Assert.EndsWith(" " + secret, p.First));
        Assert.All(connecting, p => Assert.Contains("127.0.0.1", p.Second));

        // TLS settings reach each program: this server has no TLS.
        var ssl = $"{tcp} password={secret} sslmode=require";
        var noTls = await Run("dump-push", "--dbname", ssl + " dbname=shop");
        await AssertOneErrorLineAsync(noTls, 9, "psql failed", "SSL was required");
        var restoreNoTls = await Run("dump-restore", id, "--dbname", ssl + " dbname=copy", "--clean", "--log", Path.Combine(s.Work, "tls.log"));
        await AssertOneErrorLineAsync(restoreNoTls, 9, "pg_restore failed", "SSL was required");
    }

    /// <summary>
    /// A custom or directory dump is SQL too: rendered by pg_restore --file=- in the verification pass, it is refused for a
    /// COPY ... PROGRAM in a function body (which an index, a default or a trigger could run during the restore), streamed
    /// or spooled for --jobs, before the target is created.
    /// </summary>
    [Fact]
    public async Task ACustomOrDirectoryDumpWithCopyProgramInItsSqlIsRefusedBeforeAnythingRuns()
    {
        var s = await StartAsync("dump-schema-check", "local");
        await using var _ = s.Cluster;
        await s.Cluster.SqlAsync("create database shop");
        await s.Cluster.SqlAsync("create table t (id int); insert into t values (1); " +
            "create function public.f() returns void language plpgsql as $$ begin copy (select 1) to program 'true'; end $$", "shop");
        foreach (var format in new[] { "custom", "directory" })
        {
            var id = await PushAsync(s, "--dbname", "shop", "--format", format);
            foreach (var jobs in new[] { "1", "2" })
            {
                var target = $"victim_{format}_{jobs}";
                var r = await RunAsync(s, ["dump-restore", id, "--dbname", target, "--create", "--jobs", jobs, "--log", Path.Combine(s.Work, target + ".log")]);
                await AssertOneErrorLineAsync(r, 5, id, "pg_restore --file=-", "line ", "COPY ... PROGRAM", "nothing was restored");
                Assert.Equal("0", await s.Cluster.SqlAsync($"select count(*) from pg_database where datname = '{target}'"));
            }
        }
    }
}
