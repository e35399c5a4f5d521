using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Seeded rewrites of a JSON document's values: a random node (object member or array element) is replaced by a value
/// of another type, a boundary or out-of-range number (2^31, 2^63, 1e999, -1, NaN-like text), an odd string (lone
/// surrogate, NUL, combining and wide characters), deep nesting or a long string; members are removed, renamed or
/// duplicated; numbers are nudged. The result is JSON text (raw numbers like 1e999 are spliced in after serialising),
/// optionally damaged further at the byte level.
/// </summary>
internal static class JsonMutator
{
    private static readonly string[] RawValues =
    [
        "null", "true", "false", "0", "-1", "1", "2", "-0", "0.5", "1.5", "-2147483649", "2147483647", "2147483648",
        "4294967296", "16777215", "1048576", "9223372036854775807", "9223372036854775808", "18446744073709551616", "1e999", "-1e999", "1e-400",
        "1e308", "3.4e38", "1e-45", "123456789012345678901234567890", "\"\"", "\"x\"", "\"\\ud800\"", "\"\\u0000\"",
        "\"\u2581\"", "\"\u00e9\u0301\"", "\"\ud83d\ude00\"", "\"\ufb03\"", "\"<s>\"", "\"</s>\"", "\"<unk>\"", "\"a b\"",
        "\"\\\\\"", "\"(\"", "\"[\"", "\"(?<x>\"", "\"\\\\p{Zz}\"", "\"float16\"", "\"BF16\"", "\"F64\"", "\"I8\"", "\"BOOL\"",
        "\"llama\"", "\"qwen2\"", "\"BPE\"", "\"Sequence\"", "\"ByteLevel\"", "\"Metaspace\"", "\"Split\"", "\"linear\"", "\"llama3\"",
        "[]", "{}", "[0]", "[-1]", "[0, 0]", "[1, 0]", "[0, 1e999]", "[\"a\"]", "[null]", "{\"type\": \"Sequence\"}",
        "{\"String\": \" \"}", "{\"Regex\": \"(\"}", "[0, 9223372036854775807]", "[4294967296, 4294967296]",
    ];

    private static readonly string[] Keys =
    [
        "type", "vocab", "merges", "dtype", "shape", "data_offsets", "hidden_size", "num_attention_heads", "head_dim",
        "num_key_value_heads", "vocab_size", "rope_scaling", "rope_parameters", "factor", "__metadata__", "weight_map",
        "normalizer", "pre_tokenizer", "decoder", "added_tokens", "id", "content", "eos_token_id", "sliding_window",
    ];

    public static string Mutate(string json, Random rng, List<string> log, int maxEdits = 3)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 512 }); }
        catch (JsonException) { return json; }
        if (root is null) return json;
        var raw = new Dictionary<string, string>();
        int edits = 1 + rng.Next(maxEdits);
        for (int e = 0; e < edits; e++)
        {
            var nodes = new List<JsonNode>();
            Collect(root, nodes, rng);
            if (nodes.Count == 0) break;
            var node = nodes[rng.Next(nodes.Count)];
            string where = node.GetPath();
            switch (rng.Next(10))
            {
                case < 4:
                {
                    string text = RawValues[rng.Next(RawValues.Length)];
                    Replace(node, text, raw);
                    log.Add($"{where} = {text}");
                    break;
                }
                case 4:
                {
                    int depth = rng.Next(2) == 0 ? 20 + rng.Next(300) : 5000;
                    string text = new string('[', depth) + new string(']', depth);
                    Replace(node, text, raw);
                    log.Add($"{where} = [×{depth}]");
                    break;
                }
                case 5:
                {
                    int length = rng.Next(2) == 0 ? 1 + rng.Next(300) : 200_000;
                    var sb = new StringBuilder(length);
                    for (int i = 0; i < length; i++) sb.Append((char)(rng.Next(3) == 0 ? rng.Next(0x20, 0xD7FF) : rng.Next(0x20, 0x7F)));
                    Replace(node, JsonSerializer.Serialize(sb.ToString()), raw);
                    log.Add($"{where} = string of {length}");
                    break;
                }
                case 6 when node.Parent is JsonObject parent:
                {
                    string name = node.GetPropertyName();
                    parent.Remove(name);
                    if (rng.Next(2) == 0)
                    {
                        string renamed = rng.Next(2) == 0 ? name + "x" : Keys[rng.Next(Keys.Length)];
                        if (!parent.ContainsKey(renamed)) parent[renamed] = node;
                        log.Add($"{where} renamed {renamed}");
                    }
                    else log.Add($"{where} removed");
                    break;
                }
                case 6 when node.Parent is JsonArray array:
                    array.Remove(node);
                    log.Add($"{where} removed");
                    break;
                case 7 when node is JsonValue v && v.TryGetValue(out double d):
                {
                    double nudged = rng.Next(4) switch { 0 => d + 1, 1 => d - 1, 2 => d * 2, _ => -d };
                    Replace(node, nudged.ToString("R", System.Globalization.CultureInfo.InvariantCulture), raw);
                    log.Add($"{where} {d} -> {nudged}");
                    break;
                }
                case 8 when node.Parent is JsonObject parent:
                {
                    // A member spelled twice: JsonNode cannot hold it, so the duplicate is spliced into the text.
                    string key = "__fuzz_dup_" + raw.Count;
                    raw[key] = JsonSerializer.Serialize(node.GetPropertyName()) + ": " + RawValues[rng.Next(RawValues.Length)];
                    parent[key] = 0;
                    log.Add($"{where} duplicated");
                    break;
                }
                default:
                {
                    // Swap with another node of the document.
                    var other = nodes[rng.Next(nodes.Count)];
                    if (other == node || IsAncestor(node, other) || IsAncestor(other, node))
                    {
                        Replace(node, "null", raw);
                        log.Add($"{where} = null");
                        break;
                    }
                    string a = other.ToJsonString(), b = node.ToJsonString();
                    Replace(node, a, raw);
                    Replace(other, b, raw);
                    log.Add($"{where} <-> {other.GetPath()}");
                    break;
                }
            }
        }
        string result = root.ToJsonString();
        foreach (var (key, text) in raw)
            result = key.StartsWith("__fuzz_dup_", StringComparison.Ordinal)
                ? result.Replace($"\"{key}\":0", text, StringComparison.Ordinal)
                : result.Replace($"\"{key}\"", text, StringComparison.Ordinal);
        return result;
    }

    private static bool IsAncestor(JsonNode a, JsonNode b)
    {
        for (var p = b.Parent; p != null; p = p.Parent) if (p == a) return true;
        return false;
    }

    /// <summary>Every node except the root; large arrays and objects contribute a sample of their members.</summary>
    private static void Collect(JsonNode node, List<JsonNode> into, Random rng)
    {
        IEnumerable<JsonNode?> children = node switch
        {
            JsonObject o => o.Select(p => p.Value),
            JsonArray a => a,
            _ => [],
        };
        var list = children.Where(c => c != null).Select(c => c!).ToList();
        if (list.Count > 64) list = Enumerable.Range(0, 16).Select(_ => list[rng.Next(list.Count)]).Distinct().ToList();
        foreach (var c in list)
        {
            into.Add(c);
            Collect(c, into, rng);
        }
    }

    private static void Replace(JsonNode node, string rawText, Dictionary<string, string> raw)
    {
        string key = "__fuzz_raw_" + raw.Count + "__";
        raw[key] = rawText;
        switch (node.Parent)
        {
            case JsonObject o: o[node.GetPropertyName()] = key; break;
            case JsonArray a: a[node.GetElementIndex()] = key; break;
        }
    }
}
