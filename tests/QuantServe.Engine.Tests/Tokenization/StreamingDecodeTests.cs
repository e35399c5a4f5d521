using System.Text;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Tests.Tokenization;

public class StreamingDecodeTests
{
    public static TheoryData<string> TokenizerNames => new() { "hf", "spm" };

    private static Tokenizer Get(string name) => name == "hf" ? ProseTokenizers.Hf.Tokenizer : ProseTokenizers.SentencePiece;

    [Theory]
    [MemberData(nameof(TokenizerNames))]
    public void Append_MultiByteTextTokenByToken_NeverEmitsBrokenCharactersAndEqualsWholeDecode(string name)
    {
        var tok = Get(name);
        string text = TokenizerSamples.AllJoined;
        var ids = tok.Encode(text, addBos: true);
        Assert.True(ids.Count(id => tok.TokenText(id).StartsWith("<0x", StringComparison.Ordinal)) > 20, "expected byte-fallback pieces");
        var decoder = new Utf8StreamDecoder(tok);
        var all = new StringBuilder();
        foreach (int id in ids)
        {
            var chunk = new StringBuilder();
            decoder.Append(id, chunk);
            string s = chunk.ToString();
            Assert.DoesNotContain('\uFFFD', s);
            for (int i = 0; i < s.Length; i++)
            {
                if (char.IsHighSurrogate(s[i])) { Assert.True(i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]), "split surrogate pair"); i++; }
                else Assert.False(char.IsLowSurrogate(s[i]), "lone low surrogate");
            }
            all.Append(s);
        }
        decoder.Flush(all);
        Assert.Equal(tok.Decode(ids), all.ToString());
        Assert.Equal(text, all.ToString());
    }

    [Theory]
    [MemberData(nameof(TokenizerNames))]
    public void Append_ContinuationAfterPrompt_KeepsItsLeadingSpace(string name)
    {
        var tok = Get(name);
        var prompt = tok.Encode("In the beginning God created", addBos: true);
        var continuation = tok.Encode("x the heaven", addBos: false)[1..]; // "▁the ▁heaven" pieces
        var decoder = new Utf8StreamDecoder(tok, prompt[^1]);
        var sb = new StringBuilder();
        foreach (int id in continuation) decoder.Append(id, sb);
        decoder.Flush(sb);
        Assert.Equal(" the heaven", sb.ToString());
    }
}
