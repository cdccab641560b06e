using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace CloudArchive.Core.Output;

/// <summary>
/// The one writer of every command's --json output: typed views (this folder) serialized by the source-generated
/// <see cref="OutputJson"/> (NativeAOT), camelCase, indented, one document and a newline. The drill's and dump-list's
/// output is their stored records (<see cref="Manifest.ManifestJson"/>), written the same way.
/// </summary>
public static class JsonOutput
{
    /// <summary>Writes <paramref name="value"/> to <paramref name="output"/>.</summary>
    public static void Write<T>(TextWriter output, T value, JsonTypeInfo<T> type)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true })) JsonSerializer.Serialize(writer, value, type);
        output.Write(System.Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n");
    }
}

/// <summary>The source-generated serialization of the --json views.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(IReadOnlyList<BackupView>))]
[JsonSerializable(typeof(StatusView))]
[JsonSerializable(typeof(PlanView))]
[JsonSerializable(typeof(WalListView))]
[JsonSerializable(typeof(CopyView))]
[JsonSerializable(typeof(VerifyView))]
public sealed partial class OutputJson : JsonSerializerContext;
