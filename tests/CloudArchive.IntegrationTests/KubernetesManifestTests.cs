using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CloudArchive.Core.Configuration;
using static CloudArchive.IntegrationTests.Manifests;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// deploy/kubernetes checked without a cluster: every document against the Kubernetes API's schemas (kubernetes-models;
/// fields no schema declares too), every pod against the restricted Pod Security Standard, every job for a deadline,
/// no overlap and resource limits; the drill's limit against its volume; the key where it is named; the Dockerfile's
/// PostgreSQL major. Each check also runs on manifests with one field removed, and must find it.
/// </summary>
public sealed partial class KubernetesManifestTests
{
    /// <summary>The volume types the restricted standard allows.</summary>
    private static readonly string[] RestrictedVolumes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

    [Fact]
    public async Task EveryManifestIsValidAgainstTheKubernetesApiSchemas()
    {
        var docs = await DeployedAsync();

        Assert.All(docs, d => Assert.True(d.Errors.Count == 0, $"{d}: {string.Join("; ", d.Errors)}"));
        Assert.Equal(Directory.GetFiles(Dir, "*.yaml").Select(Path.GetFileName).Order(), docs.Select(d => d.File).Distinct().Order());
        string[] expected = ["CronJob cloudarchive-backup", "CronJob cloudarchive-dump", "CronJob cloudarchive-expire", "CronJob cloudarchive-drill",
            "StatefulSet cloudarchive-db", "Deployment cloudarchive-metrics", "Deployment cloudarchive-wal-receive", "Secret cloudarchive"];
        Assert.All(expected, e => Assert.Contains(e, docs.Select(d => $"{d.Kind} {d.Name}")));
        Assert.Empty(Problems(docs));
    }

    /// <summary>The schemas and every check below find what a careless edit breaks, one field at a time.</summary>
    [Theory]
    [InlineData("backup-cronjob.yaml", "allowPrivilegeEscalation: false", "", "allowPrivilegeEscalation")]
    [InlineData("backup-cronjob.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalaton: false", "unknown field")]
    [InlineData("dump-cronjob.yaml", "runAsNonRoot: true", "runAsNonRoot: \"true\"", "must be boolean")]
    [InlineData("drill-cronjob.yaml", "seccompProfile: { type: RuntimeDefault }", "", "seccompProfile")]
    [InlineData("expire-cronjob.yaml", "capabilities: { drop: [\"ALL\"] }", "capabilities: { drop: [\"NET_RAW\"] }", "drop ALL")]
    [InlineData("database-statefulset.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem")]
    [InlineData("metrics-deployment.yaml", "runAsNonRoot: true", "", "runAsNonRoot")]
    [InlineData("backup-cronjob.yaml", "concurrencyPolicy: Forbid", "concurrencyPolicy: Allow", "concurrencyPolicy")]
    [InlineData("dump-cronjob.yaml", "activeDeadlineSeconds: 14400", "", "activeDeadlineSeconds")]
    [InlineData("expire-cronjob.yaml", "limits: { cpu: \"1\", memory: \"256Mi\" }", "", "limits")]
    [InlineData("drill-cronjob.yaml", "value: \"50Gi\"", "value: \"60Gi\"", "sizeLimit")]
    [InlineData("backup-cronjob.yaml", "mountPath: /etc/cloudarchive/key", "mountPath: /etc/cloudarchive/keys", "no volume mounted for the key")]
    [InlineData("database-statefulset.yaml", "terminationGracePeriodSeconds: 120", "terminationGracePeriodSeconds: 120\n      hostNetwork: true", "pod hostNetwork")]
    public async Task EachCheckFindsTheFieldAnEditBreaks(string file, string line, string replacement, string problem)
    {
        var dir = Path.Combine(TestEnv.NewWorkDir("k8s-" + Path.GetFileNameWithoutExtension(file)), "manifests");
        TestEnv.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Dir, "*.yaml")) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var text = await File.ReadAllTextAsync(Path.Combine(dir, file));
        var at = text.IndexOf(line, StringComparison.Ordinal);
        Assert.True(at >= 0, $"{file} has no '{line}'");
        // The whole line goes (or is replaced), as an edit would remove it.
        var start = text.LastIndexOf('\n', at) + 1;
        var indent = text[start..at];
        var end = text.IndexOf('\n', at);
        await File.WriteAllTextAsync(Path.Combine(dir, file), text[..start] + (replacement.Length == 0 ? "" : indent + replacement + "\n") + text[(end + 1)..]);

        var docs = await LoadAsync(dir);

        var found = docs.Where(d => d.File == file).SelectMany(d => d.Errors.Select(e => $"{d}: {e}")).Concat(Problems(docs)).ToList();
        Assert.True(found.Any(p => p.Contains(file, StringComparison.Ordinal) && p.Contains(problem, StringComparison.Ordinal)),
            $"no problem naming {file} and '{problem}' among:\n{string.Join("\n", found)}");
    }

    /// <summary>The drill's CLOUDARCHIVE_DRILL_DIR_LIMIT is its scratch volume's sizeLimit, read as Kubernetes reads a quantity.</summary>
    [Fact]
    public async Task TheDrillsDirectoryLimitIsItsScratchVolumesSizeLimit()
    {
        var drill = await WorkloadAsync("drill-cronjob.yaml");

        Assert.Empty(DrillLimitProblems(drill));
        var env = LiteralEnv(Containers(PodSpec(drill)!).Single());
        Assert.Equal(50L << 30, SettingsTable.DrillDirLimit.ParseSize(env[SettingsTable.DrillDirLimit.Variable]));
        Assert.Equal(50L << 30, QuantityBytes("50Gi"));
        Assert.Equal(50_000_000_000, QuantityBytes("50G"));
        Assert.Equal(1536L << 20, QuantityBytes("1536Mi"));
    }

    /// <summary>The image's PostgreSQL programs follow one build argument, which the database's image tag matches.</summary>
    [Fact]
    public async Task TheDockerfilesPostgresqlMajorIsOneBuildArgumentThatTheDatabaseImageMatches()
    {
        var dockerfile = await File.ReadAllTextAsync(Path.Combine(TestEnv.RepoRoot, "Dockerfile"));
        var lines = dockerfile.Split('\n').Where(l => !l.TrimStart().StartsWith('#')).ToList();

        var major = Assert.Single(lines.Select(l => DefaultMajor().Match(l)), m => m.Success).Groups[1].Value;
        // Every package and directory of PostgreSQL is of ${PG_MAJOR}, never a fixed major.
        Assert.DoesNotContain(lines, l => FixedMajor().IsMatch(l));
        Assert.Contains(lines, l => l.Contains("\"postgresql-client-${PG_MAJOR}\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("\"postgresql-${PG_MAJOR}\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("CLOUDARCHIVE_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("CLOUDARCHIVE_DRILL_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin", StringComparison.Ordinal));
        // A stage that uses it declares it (an ARG before FROM is not seen inside a stage otherwise).
        var stages = string.Join('\n', lines).Split("\nFROM ");
        Assert.All(stages.Skip(1).Where(s => s.Contains("${PG_MAJOR}", StringComparison.Ordinal)),
            s => Assert.Contains("\nARG PG_MAJOR\n", s));

        var db = await WorkloadAsync("database-statefulset.yaml");
        var postgres = Containers(PodSpec(db)!).Single(c => (string?)c["name"] == "postgres");
        Assert.StartsWith($"postgres:{major}-", (string?)postgres["image"]);
    }

    /// <summary>What is wrong with the manifests: the restricted standard, the jobs' bounds, the key, the drill's limit.</summary>
    private static List<string> Problems(IEnumerable<Document> docs) =>
        docs.Where(d => PodSpec(d) is not null)
            .SelectMany(d => PodSecurityProblems(d).Concat(JobProblems(d)).Concat(KeyProblems(d)).Concat(d.File.StartsWith("drill") ? DrillLimitProblems(d) : [])
                .Select(p => $"{d}: {p}"))
            .ToList();

    /// <summary>The restricted Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/), and a read-only root.</summary>
    private static IEnumerable<string> PodSecurityProblems(Document d)
    {
        var pod = PodSpec(d)!;
        var ctx = pod["securityContext"];
        if (Bool(ctx?["runAsNonRoot"]) != true) yield return "pod securityContext.runAsNonRoot is not true";
        if (Long(ctx?["runAsUser"]) == 0) yield return "pod securityContext.runAsUser is 0";
        if (Str(ctx?["seccompProfile"]?["type"]) is not ("RuntimeDefault" or "Localhost")) yield return "pod securityContext.seccompProfile is not RuntimeDefault";
        foreach (var host in new[] { "hostNetwork", "hostPID", "hostIPC" })
            if (Bool(pod[host]) == true) yield return $"pod {host} is true";
        foreach (var v in (pod["volumes"]?.AsArray() ?? []).Cast<JsonObject>())
            if (!v.Select(p => p.Key).Where(k => k != "name").All(RestrictedVolumes.Contains)) yield return $"volume {v["name"]} is of a type the restricted standard forbids";
        foreach (var c in Containers(pod))
        {
            var name = $"container {c["name"]}";
            var sc = c["securityContext"];
            if (Bool(sc?["allowPrivilegeEscalation"]) != false) yield return $"{name}: securityContext.allowPrivilegeEscalation is not false";
            if (Bool(sc?["privileged"]) == true) yield return $"{name}: privileged";
            if (Bool(sc?["runAsNonRoot"]) == false || Long(sc?["runAsUser"]) == 0) yield return $"{name}: runs as root";
            if (!(sc?["capabilities"]?["drop"]?.AsArray() ?? []).Any(x => Str(x) == "ALL")) yield return $"{name}: capabilities do not drop ALL";
            if ((sc?["capabilities"]?["add"]?.AsArray() ?? []).Any(x => Str(x) != "NET_BIND_SERVICE")) yield return $"{name}: adds capabilities";
            if (Bool(sc?["readOnlyRootFilesystem"]) != true) yield return $"{name}: securityContext.readOnlyRootFilesystem is not true";
            if (Str(sc?["seccompProfile"]?["type"]) is "Unconfined") yield return $"{name}: seccompProfile Unconfined";
            foreach (var kind in new[] { "requests", "limits" })
                foreach (var resource in new[] { "cpu", "memory" })
                    if (c["resources"]?[kind]?[resource] is null) yield return $"{name}: no resources.{kind}.{resource}";
        }
    }

    /// <summary>A job has a deadline; a CronJob also forbids a run while the last one still runs.</summary>
    private static IEnumerable<string> JobProblems(Document d)
    {
        var job = d.Kind switch { "CronJob" => d.Object!["spec"]?["jobTemplate"]?["spec"], "Job" => d.Object!["spec"], _ => null };
        if (job is null) yield break;
        if (Long(job["activeDeadlineSeconds"]) is not > 0) yield return "no activeDeadlineSeconds";
        if (d.Kind == "CronJob")
        {
            if (Str(d.Object!["spec"]?["concurrencyPolicy"]) != "Forbid") yield return "concurrencyPolicy is not Forbid";
            if (Long(d.Object!["spec"]?["startingDeadlineSeconds"]) is not > 0) yield return "no startingDeadlineSeconds";
        }
    }

    /// <summary>A container that names the archive key mounts the volume that holds it and requires encryption (a pod without the key refuses).</summary>
    private static IEnumerable<string> KeyProblems(Document d)
    {
        foreach (var c in Containers(PodSpec(d)!))
        {
            var env = LiteralEnv(c);
            if (!env.TryGetValue(SettingsTable.EncryptionKeyFile.Variable, out var key) || key is null) continue;
            var mounts = (c["volumeMounts"]?.AsArray() ?? []).Cast<JsonObject>().Select(m => (string)m["mountPath"]!);
            if (!mounts.Contains(Path.GetDirectoryName(key))) yield return $"container {c["name"]}: no volume mounted for the key {key}";
            if (SettingsTable.EncryptionRequired.ParseSwitch(env.GetValueOrDefault(SettingsTable.EncryptionRequired.Variable)) != true)
                yield return $"container {c["name"]}: names the key but does not set {SettingsTable.EncryptionRequired.Variable}";
        }
    }

    /// <summary>The drill's limit is the sizeLimit of the volume its drill directory is on (the kubelet's eviction threshold).</summary>
    private static IEnumerable<string> DrillLimitProblems(Document d)
    {
        var pod = PodSpec(d)!;
        var c = Containers(pod).Single();
        var env = LiteralEnv(c);
        var dir = env.GetValueOrDefault(SettingsTable.DrillDir.Variable);
        var mount = (c["volumeMounts"]?.AsArray() ?? []).Cast<JsonObject>().SingleOrDefault(m => Str(m["mountPath"]) == dir);
        var volume = (pod["volumes"]?.AsArray() ?? []).Cast<JsonObject>().SingleOrDefault(v => Str(v["name"]) == Str(mount?["name"]));
        var sizeLimit = Str(volume?["emptyDir"]?["sizeLimit"]);
        if (sizeLimit is null)
        {
            yield return $"the drill directory {dir} is not an emptyDir volume with a sizeLimit";
            yield break;
        }
        var limit = SettingsTable.DrillDirLimit.ParseSize(env.GetValueOrDefault(SettingsTable.DrillDirLimit.Variable));
        if (limit != QuantityBytes(sizeLimit))
            yield return $"{SettingsTable.DrillDirLimit.Variable} is {limit?.ToString(CultureInfo.InvariantCulture) ?? "unset"} bytes, the volume's sizeLimit {sizeLimit}";
    }

    /// <summary>A JSON value of the kind the API expects, else null (a schema error the validator reports).</summary>
    private static bool? Bool(JsonNode? n) => n is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    private static long? Long(JsonNode? n) => n is JsonValue v && v.TryGetValue<long>(out var l) ? l : null;

    private static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var t) ? t : null;

    /// <summary>A Kubernetes quantity of bytes: Ki, Mi, Gi, Ti, Pi are powers of 1024; k, M, G, T, P of 1000.</summary>
    private static long QuantityBytes(string quantity)
    {
        var m = Quantity().Match(quantity);
        Assert.True(m.Success, $"'{quantity}' is not a quantity of bytes this test reads");
        var exponent = m.Groups[2].Value.Length == 0 ? 0 : "KMGTP".IndexOf(char.ToUpperInvariant(m.Groups[2].Value[0]), StringComparison.Ordinal) + 1;
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) * (long)Math.Pow(m.Groups[3].Value == "i" ? 1024 : 1000, exponent);
    }

    [GeneratedRegex("^([0-9]+)([kKMGTP]?)(i?)$")]
    private static partial Regex Quantity();

    [GeneratedRegex(@"^ARG PG_MAJOR=([0-9]+)\s*$")]
    private static partial Regex DefaultMajor();

    [GeneratedRegex(@"postgresql(-client)?-[0-9]|postgresql/[0-9]")]
    private static partial Regex FixedMajor();
}
