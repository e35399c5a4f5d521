using System.Text.Json;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization.Bpe;

namespace QuantServe.Engine.Tests.Tokenization;

public class HfTokenizerJsonTests
{
    [Fact]
    public void Read_Prose15mFolder_GivesMetaspaceTokenizerWithBosSettings()
    {
        var files = ProseTokenizers.Hf;
        var tok = Assert.IsType<MetaspaceBpeTokenizer>(files.Tokenizer);
        Assert.Equal(32000, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.Equal(0, tok.UnkId);
        Assert.True(tok.AddBosByDefault);
        Assert.False(files.AddEos);
        Assert.Equal(61249, tok.MergeCount);
        Assert.True(tok.IsSpecial(1) && tok.IsSpecial(2) && !tok.IsSpecial(278));
        Assert.Equal("▁the", tok.TokenText(278));
        Assert.Equal(278, tok.TokenId("▁the"));
        Assert.Equal(1, tok.TokenId("<s>"));
    }

    [Fact]
    public void Encode_ReferencePrompts_MatchTransformersInputIds()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedAssets.Path("models", "prose-15m", "reference.json")));
        var tok = ProseTokenizers.Hf.Tokenizer;
        int count = 0;
        foreach (var r in doc.RootElement.GetProperty("references").EnumerateArray())
        {
            string prompt = r.GetProperty("prompt").GetString()!;
            int[] expected = r.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(expected, tok.Encode(prompt, addBos: true));
            count++;
        }
        Assert.True(count >= 4);
    }
}
