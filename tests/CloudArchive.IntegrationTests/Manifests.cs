using System.Text.Json;
using System.Text.Json.Nodes;

namespace CloudArchive.IntegrationTests;

/// <summary>
/// deploy/kubernetes as the Kubernetes API reads it: every document of every YAML file, parsed (YAML 1.1, as Kubernetes
/// reads it) and validated against the API's schemas by kubernetes/validate-manifests.cjs with the npm package
/// kubernetes-models, which infra/install.sh installs. Without node or the package the tests fail: no cluster is needed,
/// but the schemas are.
/// </summary>
internal static class Manifests
{
    /// <summary>Where infra/install.sh installs kubernetes-models (its lock file is kubernetes/package-lock.json).</summary>
    public const string ModelsDir = "/opt/cloudarchive-test/kubernetes-models";

    public static string Dir => Path.Combine(TestEnv.RepoRoot, "deploy", "kubernetes");

    /// <summary>One YAML document: its file, position, kind and name, what the schemas found wrong with it, and its content.</summary>
    internal sealed record Document(string File, int Index, string? Kind, string? Name, IReadOnlyList<string> Errors, JsonObject? Object)
    {
        public override string ToString() => $"{File}#{Index} ({Kind} {Name})";
    }

    private static readonly Lazy<Task<IReadOnlyList<Document>>> Deployed = new(() => LoadAsync(Dir));

    /// <summary>The documents of deploy/kubernetes (read once per test run).</summary>
    public static Task<IReadOnlyList<Document>> DeployedAsync() => Deployed.Value;

    /// <summary>The documents of every YAML file in <paramref name="dir"/>, validated.</summary>
    public static async Task<IReadOnlyList<Document>> LoadAsync(string dir)
    {
        Assert.True(File.Exists(Path.Combine(ModelsDir, "node_modules", "kubernetes-models", "package.json")),
            $"kubernetes-models is not installed in {ModelsDir}: run infra/install.sh");
        var script = Path.Combine(TestEnv.RepoRoot, "tests", "CloudArchive.IntegrationTests", "kubernetes", "validate-manifests.cjs");
        ProcResult r;
        try
        {
            r = await Proc.RunAsync("node", script, ModelsDir, dir);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"node cannot be run ({e.Message}): run infra/install.sh, which installs Debian's nodejs");
            throw;
        }
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonNode.Parse(r.Stdout)!.AsArray().Select(d => new Document(
            (string)d!["file"]!, (int)d["index"]!, (string?)d["kind"], (string?)d["name"],
            d["errors"]!.AsArray().Select(e => (string)e!).ToList(), d["object"] as JsonObject)).ToList();
    }

    /// <summary>The one document of a file that has a pod template (a CronJob, Deployment or StatefulSet).</summary>
    public static async Task<Document> WorkloadAsync(string file) =>
        Assert.Single(await DeployedAsync(), d => d.File == file && PodSpec(d) is not null);

    /// <summary>The pod spec of a workload's template; null for a document without one.</summary>
    public static JsonObject? PodSpec(Document d) => d.Kind switch
    {
        "CronJob" => d.Object?["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"] as JsonObject,
        "Job" or "Deployment" or "StatefulSet" or "DaemonSet" or "ReplicaSet" => d.Object?["spec"]?["template"]?["spec"] as JsonObject,
        "Pod" => d.Object?["spec"] as JsonObject,
        _ => null,
    };

    /// <summary>The containers and init containers of a pod spec.</summary>
    public static IEnumerable<JsonObject> Containers(JsonObject pod) =>
        new[] { "initContainers", "containers" }.SelectMany(k => pod[k]?.AsArray() ?? []).Cast<JsonObject>();

    /// <summary>A container's literal environment (name: value); values from Secrets and ConfigMaps are not literal and not here.</summary>
    public static Dictionary<string, string?> LiteralEnv(JsonObject container) =>
        (container["env"]?.AsArray() ?? []).Cast<JsonObject>()
            .Select(e => (Name: (string)e["name"]!, Value: e["value"] is JsonValue v && v.TryGetValue<string>(out var text) ? text : null))
            .Where(e => e.Value is not null).ToDictionary(e => e.Name, e => e.Value);

    public static string Text(JsonNode? node) => node?.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) ?? "null";
}
