using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>prose-15m's GGUF vocabulary (scores and token types, read as llama.cpp does) must tokenize and decode
/// real text exactly as its tokenizer.json does.</summary>
public class GgufVocabularyParityTests
{
    private static readonly Lazy<Tokenizer> Gguf = new(() =>
    {
        using var file = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        return GgufVocabulary.CreateTokenizer(file);
    });

    [Theory]
    [InlineData("bible.txt")]
    [InlineData("pydoc.txt")]
    [InlineData("fortunes.txt")]
    public void Encode_EvalLinesAndWholeFile_GgufVocabAndTokenizerJsonGiveSameIds(string file)
    {
        var gguf = Gguf.Value;
        var hf = ProseTokenizers.Hf.Tokenizer;
        foreach (var line in ProseTokenizers.EvalLines(file).Concat(TokenizerSamples.Multilingual))
        {
            var ids = gguf.Encode(line, addBos: true);
            Assert.Equal(hf.Encode(line, addBos: true), ids);
            Assert.Equal(line, gguf.Decode(ids));
        }
        string text = ProseTokenizers.EvalText(file);
        Assert.Equal(hf.Encode(text, addBos: true), gguf.Encode(text, addBos: true));
        Assert.Equal(hf.Encode("<s>[INST] hi </s>x", true, parseSpecial: true), gguf.Encode("<s>[INST] hi </s>x", true, parseSpecial: true));
    }
}
