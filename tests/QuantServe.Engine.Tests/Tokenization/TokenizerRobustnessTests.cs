using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Tokenization;

public class TokenizerRobustnessTests
{
    private static Tokenizer[] All() =>
    [
        ProseTokenizers.Hf.Tokenizer,
        ProseTokenizers.SentencePiece,
        HfTokenizerJson.FromJson(ByteLevelVocabulary.Json("llama3")).Tokenizer,
        HfTokenizerJson.FromJson(ByteLevelVocabulary.Json("qwen2")).Tokenizer,
    ];

    [Fact]
    public void Encode_FromManyThreadsAtOnce_SameIdsAsSequential()
    {
        string[] lines = ProseTokenizers.EvalLines("fortunes.txt");
        foreach (var tok in All())
        {
            var expected = lines.Select(l => tok.Encode(l, addBos: true)).ToArray();
            var actual = new int[lines.Length][];
            Parallel.For(0, lines.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => actual[i] = tok.Encode(lines[i], addBos: true));
            for (int i = 0; i < lines.Length; i++) Assert.Equal(expected[i], actual[i]);
        }
    }

    [Fact]
    public void Encode_LoneSurrogatesAndNoncharacters_DoNotThrowAndDecodeAsReplacement()
    {
        foreach (var tok in All())
        {
            var ids = tok.Encode("a\uD800b\uDC00c\uFFFEd", addBos: true, parseSpecial: true);
            Assert.Equal("a\uFFFDb\uFFFDc\uFFFEd", tok.Decode(ids));
            Assert.Empty(tok.TokenBytes(-1, -1).ToArray());
            Assert.Empty(tok.TokenBytes(tok.VocabSize, -1).ToArray());
            Assert.Equal("", tok.TokenText(tok.VocabSize));
            Assert.Equal(-1, tok.TokenId("no such piece \u0001"));
        }
    }
}
