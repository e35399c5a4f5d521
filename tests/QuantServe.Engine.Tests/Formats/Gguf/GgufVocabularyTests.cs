using System.Text.Json;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufVocabularyTests
{
    public static TheoryData<string, int[]> ReferencePrompts()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedAssets.Prose15m, "reference.json")));
        var data = new TheoryData<string, int[]>();
        foreach (var r in doc.RootElement.GetProperty("references").EnumerateArray())
            data.Add(r.GetProperty("prompt").GetString()!, r.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        return data;
    }

    private static readonly Lazy<Tokenizer> Prose = new(() =>
    {
        using var f = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        return GgufVocabulary.CreateTokenizer(f);
    });

    [Theory]
    [MemberData(nameof(ReferencePrompts))]
    public void CreateTokenizer_ProseF16_EncodesReferencePromptsLikeTransformers(string prompt, int[] inputIds)
    {
        var tokenizer = Prose.Value;
        Assert.True(tokenizer.AddBosByDefault);
        Assert.Equal(inputIds, tokenizer.Encode(prompt, addBos: true));
        Assert.Equal(prompt, tokenizer.Decode(inputIds));
    }

    [Fact]
    public void CreateTokenizer_ProseF16_ReadsSpecialTokensAndStopIds()
    {
        using var f = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q8_0.gguf"));
        var tokenizer = Assert.IsType<SentencePieceBpeTokenizer>(GgufVocabulary.CreateTokenizer(f));
        Assert.Equal(32000, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.Equal(0, tokenizer.UnkId);
        Assert.Equal(TokenType.Byte, tokenizer.Type(3));
        Assert.True(tokenizer.IsSpecial(1));
        Assert.Equal([2], GgufVocabulary.StopTokenIds(f, tokenizer));
    }
}
