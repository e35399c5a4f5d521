using System.Text.Json;
using System.Text.Json.Nodes;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>prose-15m's Hugging Face files as fuzzing sources.</summary>
internal static class HfFuzzCorpus
{
    /// <summary>Pieces kept in the reduced tokenizer.json.</summary>
    public const int ReducedVocab = 1000;

    private static readonly Lazy<string> Reduced = new(BuildReducedTokenizer);

    public static string Folder => SharedAssets.Prose15m;

    public static string Text(string name) => File.ReadAllText(Path.Combine(Folder, name));

    /// <summary>
    /// prose-15m's real tokenizer.json cut down to its first <see cref="ReducedVocab"/> pieces (specials, the 256 byte
    /// pieces and the commonest merges' results) and the merges among them, with every other section untouched: the same
    /// structure the reader sees in the real file, small enough to parse thousands of times.
    /// </summary>
    public static string ReducedTokenizerJson => Reduced.Value;

    private static string BuildReducedTokenizer()
    {
        var root = JsonNode.Parse(Text("tokenizer.json"))!.AsObject();
        var model = root["model"]!.AsObject();
        var vocab = new JsonObject();
        var kept = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (piece, id) in model["vocab"]!.AsObject())
            if (id!.GetValue<int>() < ReducedVocab) { vocab[piece] = id.GetValue<int>(); kept.Add(piece); }
        var merges = new JsonArray();
        foreach (var m in model["merges"]!.AsArray())
        {
            string a = m![0]!.GetValue<string>(), b = m[1]!.GetValue<string>();
            if (kept.Contains(a) && kept.Contains(b) && kept.Contains(a + b)) merges.Add(new JsonArray(a, b));
        }
        model["vocab"] = vocab;
        model["merges"] = merges;
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}
