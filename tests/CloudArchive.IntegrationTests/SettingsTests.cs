namespace CloudArchive.IntegrationTests;

/// <summary>Every setting: the flag, else the CLOUDARCHIVE_* variable, else the config file (--config or CLOUDARCHIVE_CONFIG).</summary>
[Collection(EtcCloudArchive.Name)]
public sealed class SettingsTests
{
    private const string Name = "000000010000000000000001";

    private sealed class Setup
    {
        public required string Work { get; init; }
        public required string Segment { get; init; }
        public required string Config { get; init; }
        public required LocalStore A { get; init; }
        public required LocalStore B { get; init; }
        public required LocalStore C { get; init; }

        /// <summary>The one store the segment landed in.</summary>
        public string Landed() => string.Join(",", new[] { ("A", A), ("B", B), ("C", C) }.Where(s => File.Exists(s.Item2.ObjectPath(Name))).Select(s => s.Item1));
    }

    private static async Task<Setup> NewAsync(string label)
    {
        var work = TestEnv.NewWorkDir(label);
        var a = new LocalStore(Path.Combine(work, "A"));
        var config = Path.Combine(work, "cloudarchive.env");
        await File.WriteAllTextAsync(config, $"# written by SettingsTests\n\nCLOUDARCHIVE_STORE={a.Url}\n");
        return new Setup
        {
            Work = work,
            Segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), Name, seed: 1),
            Config = config,
            A = a,
            B = new LocalStore(Path.Combine(work, "B")),
            C = new LocalStore(Path.Combine(work, "C")),
        };
    }

    [Fact]
    public async Task TheFlagWinsOverTheVariableAndTheConfigFile()
    {
        var s = await NewAsync("settings-flag");
        var r = await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config, "--store", s.C.Url],
            new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = s.B.Url });
        Expect.Exit(r, 0);
        Assert.Equal("C", s.Landed());
    }

    [Fact]
    public async Task TheVariableWinsOverTheConfigFile()
    {
        var s = await NewAsync("settings-env");
        var r = await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config],
            new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = s.B.Url });
        Expect.Exit(r, 0);
        Assert.Equal("B", s.Landed());

        // The same with the config file named by CLOUDARCHIVE_CONFIG.
        var s2 = await NewAsync("settings-env2");
        r = await Cli.RunBareAsync(["wal-push", s2.Segment],
            new Dictionary<string, string?> { ["CLOUDARCHIVE_STORE"] = s2.B.Url, ["CLOUDARCHIVE_CONFIG"] = s2.Config });
        Expect.Exit(r, 0);
        Assert.Equal("B", s2.Landed());
    }

    [Fact]
    public async Task TheConfigFileAloneIsUsed()
    {
        var s = await NewAsync("settings-config");
        Expect.Exit(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config]), 0);
        Assert.Equal("A", s.Landed());

        var s2 = await NewAsync("settings-config2");
        Expect.Exit(await Cli.RunBareAsync(["wal-push", s2.Segment], new Dictionary<string, string?> { ["CLOUDARCHIVE_CONFIG"] = s2.Config }), 0);
        Assert.Equal("A", s2.Landed());

        // And every command reads it: the segment comes back through the same config.
        var dest = Path.Combine(s2.Work, "fetched");
        Expect.Exit(await Cli.RunBareAsync(["wal-fetch", Name, dest], new Dictionary<string, string?> { ["CLOUDARCHIVE_CONFIG"] = s2.Config }), 0);
        Assert.Equal(await File.ReadAllBytesAsync(s2.Segment), await File.ReadAllBytesAsync(dest));
        var list = await Cli.RunBareAsync(["wal-list", "--config", s2.Config]);
        Expect.Exit(list, 0);
        Assert.Contains(Name, list.Stdout);
    }

    [Fact]
    public async Task TheFlagConfigWinsOverTheVariableConfig()
    {
        var s = await NewAsync("settings-twoconfigs");
        var other = Path.Combine(s.Work, "other.env");
        await File.WriteAllTextAsync(other, $"CLOUDARCHIVE_STORE={s.B.Url}\n");
        var r = await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config], new Dictionary<string, string?> { ["CLOUDARCHIVE_CONFIG"] = other });
        Expect.Exit(r, 0);
        Assert.Equal("A", s.Landed());
    }

    [Fact]
    public async Task OtherSettingsComeFromTheConfigFileToo()
    {
        var s = await NewAsync("settings-level");
        await File.AppendAllTextAsync(s.Config, "CLOUDARCHIVE_COMPRESS_LEVEL=42\n");
        Expect.OneLineError(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config]), 2);
        Assert.Equal("", s.Landed());

        // The flag still wins over the bad value in the file.
        Expect.Exit(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config, "--compress-level", "5"]), 0);
        Assert.Equal("A", s.Landed());
    }

    [Fact]
    public async Task AMissingConfigFileIsAUsageError()
    {
        var s = await NewAsync("settings-missing");
        var missing = Path.Combine(s.Work, "no-such.env");

        var line = Expect.OneLineError(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", missing]), 2);
        Assert.Contains(missing, line);
        Expect.OneLineError(await Cli.RunBareAsync(["wal-push", s.Segment], new Dictionary<string, string?> { ["CLOUDARCHIVE_CONFIG"] = missing }), 2);
        // Even with a store given another way: a named config file that cannot be read is a mistake.
        Expect.OneLineError(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", missing, "--store", s.C.Url]), 2);
        Assert.Equal("", s.Landed());
    }

    [Fact]
    public async Task AMalformedConfigFileIsAUsageError()
    {
        var s = await NewAsync("settings-malformed");
        await File.AppendAllTextAsync(s.Config, "this line has no equals sign\n");
        var line = Expect.OneLineError(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config]), 2);
        Assert.Contains("line 4", line);
        Assert.Equal("", s.Landed());
    }

    [Theory]
    [InlineData("--retry-timeout", "soon", null, null)]
    [InlineData("--retry-timeout", "-1", null, null)]
    [InlineData(null, null, "CLOUDARCHIVE_RETRY_TIMEOUT", "forever")]
    [InlineData("--log-level", "loud", null, null)]
    [InlineData(null, null, "CLOUDARCHIVE_LOG_LEVEL", "loud")]
    public async Task ABadSettingValueIsAUsageError(string? flag, string? value, string? variable, string? variableValue)
    {
        var s = await NewAsync("settings-bad");
        string[] args = flag is null ? ["wal-push", s.Segment, "--store", s.C.Url] : ["wal-push", s.Segment, "--store", s.C.Url, flag, value!];
        var env = variable is null ? null : new Dictionary<string, string?> { [variable] = variableValue };
        Expect.OneLineError(await Cli.RunBareAsync(args, env), 2);
        Assert.Equal("", s.Landed());
    }

    [Fact]
    public async Task ACommentAfterAValueIsNotPartOfItAndAQuotedValueIsTakenExactly()
    {
        var s = await NewAsync("settings-comment");
        await File.WriteAllTextAsync(s.Config, $"CLOUDARCHIVE_STORE={s.B.Url}   # the archive volume\nCLOUDARCHIVE_LOG_LEVEL='info' # quoted\n");
        var r = await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config]);
        Expect.Exit(r, 0);
        Assert.Equal("B", s.Landed());
        Assert.Contains("archived", r.Stderr); // log level info came through the quoted value

        await File.WriteAllTextAsync(s.Config, $"CLOUDARCHIVE_STORE=\"{s.C.Url}\" trailing\n");
        Assert.Contains("line 1", Expect.OneLineError(await Cli.RunBareAsync(["wal-push", s.Segment, "--config", s.Config]), 2));
    }

    /// <summary>restore_command's promise holds before the command even starts: a bad setup stops recovery, it never ends it.</summary>
    [Theory]
    [InlineData("unreadable-config", 200)]
    [InlineData("bad-log-level", 200)]
    [InlineData("bad-value", 200)]
    [InlineData("unknown-flag", 200)]
    [InlineData("unreadable-config-standby", 2)]
    public async Task EveryWayWalFetchFailsInArchiveRecoveryStopsIt(string fault, int expected)
    {
        var s = await NewAsync("settings-fetch-" + fault);
        var dataDir = Path.Combine(s.Work, "data");
        TestEnv.CreateDirectory(Path.Combine(dataDir, "pg_wal"));
        await File.WriteAllTextAsync(Path.Combine(dataDir, "PG_VERSION"), "15\n");
        await File.WriteAllTextAsync(Path.Combine(dataDir, fault.EndsWith("standby", StringComparison.Ordinal) ? "standby.signal" : "recovery.signal"), "");
        string[] args = fault switch
        {
            "unreadable-config" or "unreadable-config-standby" => ["wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--config", Path.Combine(s.Work, "no-such.env")],
            "bad-log-level" => ["wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--config", s.Config, "--log-level", "loud"],
            "bad-value" => ["wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--config", s.Config, "--retry-timeout", "soon"],
            _ => ["wal-fetch", Name, "pg_wal/RECOVERYXLOG", "--config", s.Config, "--no-such-flag"],
        };

        var r = await Cli.RunBareAsync(args, cwd: dataDir);

        // 200 stops archive recovery; on a standby a failure that is not the store's is left as it is (the standby streams on).
        Expect.Exit(r, expected);
        Expect.NoStackTrace(r);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dataDir, "pg_wal")));
    }
    /// <summary>A misspelled key in the config file or a misspelled variable would leave its setting quietly unset (a key file: plaintext).</summary>
    [Fact]
    public async Task AMisspelledSettingIsRefusedWithTheOneMeant()
    {
        var store = LocalStore.Create("settings-typo", out var work);
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);
        var config = Path.Combine(work, "typo.env");
        await File.WriteAllTextAsync(config, $"CLOUDARCHIVE_STORE={store.Url}\nCLOUDARCHIVE_ENCRYPTION_KEYFILE=/etc/cloudarchive/archive.key\n");

        var inFile = await Cli.RunBareAsync(["wal-push", segment, "--config", config]);
        var inEnv = await store.Cli.RunAsync(["wal-push", segment], new Dictionary<string, string?> { ["CLOUDARCHIVE_ENCRYPTON_KEY_FILE"] = "/k" }, null);

        Assert.Contains("line 2: unknown setting CLOUDARCHIVE_ENCRYPTION_KEYFILE (did you mean CLOUDARCHIVE_ENCRYPTION_KEY_FILE?)", Expect.OneLineError(inFile, 2));
        Assert.Contains("unknown setting CLOUDARCHIVE_ENCRYPTON_KEY_FILE in the environment (did you mean CLOUDARCHIVE_ENCRYPTION_KEY_FILE?)",
            Expect.OneLineError(inEnv, 2));
        Assert.Empty(store.VisibleFiles());
    }

    /// <summary>The S3 credentials may live in the config file with the rest: they reach the SDK (and no child program).</summary>
    [Fact]
    public async Task S3CredentialsInTheConfigFileAreUsed()
    {
        var work = TestEnv.NewWorkDir("settings-s3-keys");
        var store = TestStore.Create("s3", work);
        await File.AppendAllLinesAsync(store.ConfigFile, [$"AWS_ACCESS_KEY_ID={Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID")}",
            $"AWS_SECRET_ACCESS_KEY={Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY")}"]);
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);
        var noKeys = new Dictionary<string, string?> { ["AWS_ACCESS_KEY_ID"] = null, ["AWS_SECRET_ACCESS_KEY"] = null };

        var r = await Cli.RunBareAsync(["wal-push", segment, "--config", store.ConfigFile], noKeys);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("000000010000000000000001", (await Cli.RunBareAsync(["wal-list", "--config", store.ConfigFile], noKeys)).Stdout);
    }
    /// <summary>`cloudarchive config`: each setting's value and where it came from; a secret only as set.</summary>
    [Fact]
    public async Task ConfigShowsEachSettingsValueAndSourceAndNoSecret()
    {
        var work = TestEnv.NewWorkDir("settings-show");
        var config = Path.Combine(work, "c.env");
        const string secret = "AccountKey=never-shown-0123456789";
        await File.WriteAllTextAsync(config, $"CLOUDARCHIVE_STORE=file:///var/lib/from-file\nCLOUDARCHIVE_JOBS=3\nAZURE_STORAGE_CONNECTION_STRING={secret}\n");

        var r = await Cli.RunBareAsync(["config", "--config", config, "--log-level", "error"],
            new Dictionary<string, string?> { ["CLOUDARCHIVE_RETRY_TIMEOUT"] = "7" });

        Assert.True(r.ExitCode == 0, r.ToString());
        string Line(string variable) => r.Stdout.Split('\n').Single(l => l.StartsWith(variable + " ", StringComparison.Ordinal));
        Assert.Contains($"file:///var/lib/from-file   [config file {config}]", Line("CLOUDARCHIVE_STORE"));
        Assert.Contains("3   [config file", Line("CLOUDARCHIVE_JOBS"));
        Assert.Contains("7   [environment]", Line("CLOUDARCHIVE_RETRY_TIMEOUT"));
        Assert.Contains("error   [flag --log-level]", Line("CLOUDARCHIVE_LOG_LEVEL"));
        Assert.Contains("(set, not shown)", Line("AZURE_STORAGE_CONNECTION_STRING"));
        Assert.Contains("[default]", Line("CLOUDARCHIVE_PREFETCH"));
        Assert.DoesNotContain("never-shown", r.Stdout + r.Stderr);
    }

    /// <summary>
    /// --archive-timeout was renamed --async-wait (it is not PostgreSQL's archive_timeout): the old name is refused as a
    /// flag, a variable and a config key, each time naming the new one, and nothing is pushed.
    /// </summary>
    [Fact]
    public async Task TheOldNameOfAsyncWaitIsRefusedNamingTheNewOne()
    {
        var store = LocalStore.Create("settings-renamed", out var work);
        var segment = TestSegments.WriteSegment(Path.Combine(work, "pg_wal"), "000000010000000000000001", seed: 1);
        var config = Path.Combine(work, "old.env");
        await File.WriteAllTextAsync(config, $"CLOUDARCHIVE_STORE={store.Url}\nCLOUDARCHIVE_ARCHIVE_TIMEOUT=30\n");

        var flag = await store.Cli.RunAsync("wal-push", segment, "--archive-timeout", "30");
        var variable = await store.Cli.RunAsync(["wal-push", segment], new Dictionary<string, string?> { ["CLOUDARCHIVE_ARCHIVE_TIMEOUT"] = "30" }, null);
        var key = await Cli.RunBareAsync(["wal-push", segment, "--config", config]);

        const string now = "is now CLOUDARCHIVE_ASYNC_WAIT (--async-wait): renamed because it is not PostgreSQL's archive_timeout";
        Assert.Contains(now, Expect.OneLineError(flag, 2));
        Assert.Contains(now + " (in the environment)", Expect.OneLineError(variable, 2));
        Assert.Contains($"config file {config}, line 2: CLOUDARCHIVE_ARCHIVE_TIMEOUT (--archive-timeout) " + now, Expect.OneLineError(key, 2));
        Assert.Empty(store.VisibleFiles());
        var ok = await store.Cli.RunAsync("wal-push", segment, "--async-wait", "30");
        Assert.True(ok.ExitCode == 0, ok.ToString());
    }

    /// <summary>
    /// Without --config or CLOUDARCHIVE_CONFIG, /etc/cloudarchive/cloudarchive.env is read when it exists (config names
    /// it as the source); CLOUDARCHIVE_CONFIG set empty reads none; a config file its group or others may write is refused.
    /// The default file holds only the default log level, so the tests running beside this one behave as before.
    /// </summary>
    [Fact]
    public async Task TheDefaultConfigFileIsReadUnlessTurnedOffAndAWritableOneIsRefused()
    {
        await EtcCloudArchive.WithDefaultConfigFileAsync(async () =>
        {
            var read = await Cli.RunBareAsync(["config"]);
            Assert.True(read.ExitCode == 0, read.ToString());
            Assert.Contains($"warn   [config file {EtcCloudArchive.DefaultFile}]", read.Stdout);

            var none = await Cli.RunBareAsync(["config"], new Dictionary<string, string?> { ["CLOUDARCHIVE_CONFIG"] = "" });
            Assert.True(none.ExitCode == 0, none.ToString());
            Assert.DoesNotContain("[config file", none.Stdout);
        });

        // Not on the default file: every cloudarchive the other tests start would refuse it meanwhile.
        var work = TestEnv.NewWorkDir("settings-writable");
        var shared = Path.Combine(work, "shared.env");
        await File.WriteAllTextAsync(shared, "CLOUDARCHIVE_LOG_LEVEL=warn\n");
        File.SetUnixFileMode(shared, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        var writable = await Cli.RunBareAsync(["config", "--config", shared]);
        Assert.Contains($"config file {shared} is writable by its group or by others", Expect.OneLineError(writable, 2));
    }
}

/// <summary>Tests that write or remove /etc/cloudarchive (the default config file, the package's example) run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class EtcCloudArchive
{
    public const string Name = "/etc/cloudarchive";

    public const string DefaultFile = "/etc/cloudarchive/cloudarchive.env";

    /// <summary>
    /// Runs <paramref name="test"/> while the default config file exists (root only; one that is already there is never
    /// changed). It holds only the default log level, so the tests running beside it behave as before.
    /// </summary>
    public static async Task WithDefaultConfigFileAsync(Func<Task> test)
    {
        Assert.True(TestEnv.IsRoot, $"this test writes {Name}: it runs as root (as CI does)");
        Assert.False(File.Exists(DefaultFile), $"{DefaultFile} exists on this machine: the test would change it");
        Directory.CreateDirectory(Name);
        try
        {
            await File.WriteAllTextAsync(DefaultFile, "# the test's: the default level\nCLOUDARCHIVE_LOG_LEVEL=warn\n");
            File.SetUnixFileMode(DefaultFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            await test();
        }
        finally
        {
            File.Delete(DefaultFile);
            if (!Directory.EnumerateFileSystemEntries(Name).Any()) Directory.Delete(Name);
        }
    }
}
