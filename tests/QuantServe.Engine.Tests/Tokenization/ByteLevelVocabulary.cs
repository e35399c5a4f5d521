using System.Text.Json;
using System.Text.Json.Nodes;
using QuantServe.Engine.Tokenization.Bpe;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>
/// A small hand-made byte-level vocabulary: ids 0..255 are the 256 byte characters (id = byte value), then
/// 256 "Ġt", 257 "he", 258 "Ġthe", 259 "ll", 260 "hell", 261 "hello", 262 "Ġhello", 263 "<|endoftext|>" (special),
/// 264 "<|im_start|>" (special, added only), 265 "12", 266 "123".
/// </summary>
public static class ByteLevelVocabulary
{
    public static readonly (string, string)[] Merges =
        [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "hello"), ("1", "2"), ("12", "3")];

    public static readonly string[] MergedPieces = ["Ġt", "he", "Ġthe", "ll", "hell", "hello", "Ġhello"];

    public static string Ch(char c) => ByteLevelAlphabet.ByteToChar((byte)c).ToString();

    public static List<string> Pieces()
    {
        var pieces = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.ByteToChar((byte)b).ToString()).ToList();
        pieces.AddRange(MergedPieces);
        pieces.Add("<|endoftext|>");
        return pieces; // 264 entries; "12" and "123" follow the added id 264
    }

    /// <summary>tokenizer.json text in GPT-2 (<paramref name="style"/> = "gpt2"), Llama-3 ("llama3") or Qwen2 ("qwen2") form.</summary>
    public static string Json(string style, bool arrayMerges = false, bool? ignoreMerges = null, IEnumerable<(string, string)>? merges = null,
        bool stripAroundImStart = false)
    {
        var vocab = new JsonObject();
        var pieces = Pieces();
        for (int i = 0; i < pieces.Count; i++) vocab[pieces[i]] = i;
        vocab["12"] = 265;
        vocab["123"] = 266;
        var mergeArray = new JsonArray();
        foreach (var (a, b) in merges ?? Merges)
            mergeArray.Add(arrayMerges ? new JsonArray(a, b) : JsonValue.Create($"{a} {b}"));
        var model = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "",
            ["end_of_word_suffix"] = "", ["fuse_unk"] = false, ["byte_fallback"] = false,
            ["ignore_merges"] = ignoreMerges ?? style == "llama3", ["vocab"] = vocab, ["merges"] = mergeArray,
        };
        JsonNode Added(int id, string content) => new JsonObject
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false,
            ["lstrip"] = stripAroundImStart && id == 264, ["rstrip"] = stripAroundImStart && id == 264,
            ["normalized"] = false, ["special"] = true,
        };
        JsonNode? pre = style switch
        {
            "gpt2" => new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            _ => new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = style == "llama3"
                            ? QuantServe.Engine.Tokenization.Text.Gpt2StylePattern.Llama3 : QuantServe.Engine.Tokenization.Text.Gpt2StylePattern.Qwen2 },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
            },
        };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Added(263, "<|endoftext|>"), Added(264, "<|im_start|>")),
            ["normalizer"] = style == "qwen2" ? new JsonObject { ["type"] = "NFC" } : null,
            ["pre_tokenizer"] = pre,
            ["post_processor"] = style == "llama3"
                ? JsonNode.Parse("""{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|endoftext|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{}}""")
                : new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = model,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}
