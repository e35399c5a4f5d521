using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Fuzzing bug 3: tokenizer.json ids size the tokenizer's arrays, so one piece (or added token) with id 16777215 in a
/// file of a few bytes made the reader allocate 128 MiB and more. Ids far beyond the number of tokens are now refused.
/// </summary>
public class TokenizerJsonRegressionTests
{
    [Fact]
    public void FromJson_VocabIdFarBeyondEntries_ThrowsBeforeAllocating()
    {
        string json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":16777215},\"merges\":[]}}";
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ModelLoadException>(() => HfTokenizerJson.FromJson(json, null, "/m/tokenizer.json"));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the refusal must come before the arrays are allocated");
        Assert.Equal("/m/tokenizer.json", e.File);
        Assert.Contains("id 16777215 is far beyond its 2 entries", e.Problem);
    }

    [Fact]
    public void FromJson_AddedTokenIdFarBeyondVocabulary_ThrowsModelLoadException()
    {
        string json = "{\"added_tokens\":[{\"id\":16000000,\"content\":\"<x>\",\"special\":true}]," +
                      "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
        var e = Assert.Throws<ModelLoadException>(() => HfTokenizerJson.FromJson(json, null, "/m/tokenizer.json"));
        Assert.Contains("added token '<x>' has id 16000000", e.Problem);
    }

    [Fact]
    public void FromJson_AddedTokensAfterVocabulary_StillLoads()
    {
        // Llama-3's layout: model pieces 0..n-1, added (special) tokens right after them.
        string json = "{\"added_tokens\":[{\"id\":3,\"content\":\"<|end|>\",\"special\":true}]," +
                      "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
        var files = HfTokenizerJson.FromJson(json, null, "/m/tokenizer.json");
        Assert.Equal(4, files.Tokenizer.VocabSize);
    }
}
