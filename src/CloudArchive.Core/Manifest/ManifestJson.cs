using System.Text.Json.Serialization;

namespace CloudArchive.Core.Manifest;

/// <summary>The source-generated JSON serialization of manifest records (NativeAOT: no reflection).</summary>
[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WalFileRecord))]
[JsonSerializable(typeof(Backup.BackupRecord))]
[JsonSerializable(typeof(Dump.DumpRecord))]
[JsonSerializable(typeof(List<Dump.DumpRecord>))]
[JsonSerializable(typeof(Operations.DrillRecord))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class ManifestJson : JsonSerializerContext;
