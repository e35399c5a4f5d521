using System.Text;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Tests.Tokenization;

public class SentencePieceBpeTokenizerTests
{
    private static readonly Lazy<SentencePieceBpeTokenizer> Tok512 =
        new(() => Llama2cTokenizerFile.Read(SharedAssets.Path("models", "stories260K", "tok512.bin"), 512));

    [Fact]
    public void Encode_StoriesSamplesWithTok512_RoundTripsAndUsesFewerTokensThanBytes()
    {
        var tok = Tok512.Value;
        string text = ProseTokenizers.EvalText("stories260k-samples.txt");
        var ids = tok.Encode(text, addBos: true);
        Assert.Equal(1, ids[0]);
        Assert.All(ids, id => Assert.InRange(id, 0, 511));
        Assert.Equal(text, tok.Decode(ids));
        Assert.True(ids.Length < Encoding.UTF8.GetByteCount(text) / 2, $"{ids.Length} tokens for {text.Length} chars");
    }

    [Fact]
    public void Encode_MultilingualWithTok512_FallsBackToBytesAndRoundTrips()
    {
        var tok = Tok512.Value;
        foreach (var s in TokenizerSamples.Multilingual)
        {
            var ids = tok.Encode(s, addBos: true);
            Assert.Equal(s, tok.Decode(ids));
        }
        var cjk = tok.Encode("日", addBos: false);
        // "日" is E6 97 A5: after the dummy-prefix space, three byte pieces <0xE6><0x97><0xA5> (ids 3 + byte).
        Assert.Equal([3 + 0xE6, 3 + 0x97, 3 + 0xA5], cjk[^3..]);
    }

    [Fact]
    public void Encode_SimplePhrase_MergesByScoreAsSentencePiece()
    {
        var tok = ProseTokenizers.SentencePiece;
        // LLaMA-2 ids (as transformers gives them for the same vocabulary in reference.json).
        Assert.Equal([1, 450, 4996, 17354, 1701, 29916], tok.Encode("The quick brown fox", addBos: true));
        Assert.Equal([450], tok.Encode("The", addBos: false));
    }

    [Fact]
    public void Encode_ControlPieceText_ParsedOnlyWithParseSpecial()
    {
        var tok = ProseTokenizers.SentencePiece;
        var parsed = tok.Encode("Hello</s>world", addBos: false, parseSpecial: true);
        Assert.Contains(2, parsed);
        // The text after a control piece gets the dummy-prefix space again (llama.cpp, and HF's legacy Llama normalizer).
        Assert.Equal(tok.Encode("world", addBos: false), parsed[(Array.IndexOf(parsed, 2) + 1)..]);
        var literal = tok.Encode("Hello</s>world", addBos: false, parseSpecial: false);
        Assert.DoesNotContain(2, literal);
        Assert.Equal("Hello</s>world", tok.Decode(literal));
    }

    [Fact]
    public void TokenBytes_FirstTokenAfterBosOrAtStart_DropsDummySpaceOnlyThere()
    {
        var tok = ProseTokenizers.SentencePiece;
        int the = tok.TokenId("▁the");
        Assert.Equal(278, the);
        Assert.Equal("the", Encoding.UTF8.GetString(tok.TokenBytes(the, -1)));
        Assert.Equal("the", Encoding.UTF8.GetString(tok.TokenBytes(the, tok.BosId)));
        Assert.Equal(" the", Encoding.UTF8.GetString(tok.TokenBytes(the, 450)));
        Assert.Empty(tok.TokenBytes(tok.EosId, 450).ToArray());
        Assert.Equal([0x0A], tok.TokenBytes(tok.TokenId("<0x0A>"), 450).ToArray());
        Assert.True(tok.IsSpecial(1) && tok.IsSpecial(2) && !tok.IsSpecial(the));
    }
}
