using System.Text;
using System.Text.Json;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>Decoding transformers' greedy ids reproduces transformers' greedy text, including a BOS the model emits
/// mid-sequence as a document separator (the token after it keeps its leading space).</summary>
public class ReferenceDecodeTests
{
    public static TheoryData<string> Sources => new() { "hf", "gguf" };

    [Theory]
    [MemberData(nameof(Sources))]
    public void Decode_ReferenceGreedyIds_EqualsTransformersText(string source)
    {
        using var model = ModelLoader.Load(source == "hf" ? SharedAssets.Prose15m : SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf"));
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedAssets.Path("models", "prose-15m", "reference.json")));
        int separators = 0;
        foreach (var r in doc.RootElement.GetProperty("references").EnumerateArray())
        {
            int[] ids = r.GetProperty("greedy_ids").EnumerateArray().Select(v => v.GetInt32()).ToArray();
            string expected = r.GetProperty("greedy_text").GetString()!;
            separators += ids.Skip(1).Count(t => t == model.Tokenizer.BosId);
            Assert.Equal(expected, model.Tokenizer.Decode(ids));

            var streamed = new StringBuilder();
            var decoder = new Utf8StreamDecoder(model.Tokenizer);
            foreach (int t in ids) decoder.Append(t, streamed);
            decoder.Flush(streamed);
            Assert.Equal(expected, streamed.ToString());
        }
        Assert.True(separators > 0, "the reference should contain a mid-sequence BOS for this test to mean anything");
    }
}
