using System.Text;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.Bpe;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Tokenization;

public class ByteLevelBpeTokenizerTests
{
    private static BpeTokenizer Load(string style, bool arrayMerges = false, bool? ignoreMerges = null, IEnumerable<(string, string)>? merges = null, string? config = null) =>
        HfTokenizerJson.FromJson(ByteLevelVocabulary.Json(style, arrayMerges, ignoreMerges, merges), config).Tokenizer;

    private static int B(char c) => c; // byte pieces have id = byte value

    [Fact]
    public void Encode_Gpt2StyleWords_MergesLowestRankFirst()
    {
        var tok = Assert.IsType<ByteLevelBpeTokenizer>(Load("gpt2"));
        // "the" → t,h,e → (h e) → t,he; " hello" → Ġ,h,e,l,l,o → he → ll → hell → hello → Ġhello.
        Assert.Equal([B('t'), 257, 262], tok.Encode("the hello", addBos: false));
        // " the" → (Ġ t) rank 0 first, then (h e), then (Ġt he).
        Assert.Equal([B('t'), 257, 258], tok.Encode("the the", addBos: false));
        // (l l) has rank 3 but (h e) rank 1 goes first even though both are available: he, ll → hell.
        Assert.Equal([260], tok.Encode("hell", addBos: false));
        Assert.False(tok.AddBosByDefault);
        Assert.Equal(-1, tok.BosId);
    }

    [Fact]
    public void Encode_MergesInArrayForm_SameIdsAsStringForm()
    {
        var a = Load("gpt2");
        var b = Load("gpt2", arrayMerges: true);
        foreach (var s in TokenizerSamples.Multilingual.Append("the hello hell 123 the"))
            Assert.Equal(a.Encode(s, false), b.Encode(s, false));
    }

    [Fact]
    public void Encode_SpecialTokenText_SplitOutOnlyWithParseSpecial()
    {
        var tok = Load("gpt2");
        Assert.Equal([263, B('t'), 257, 264], tok.Encode("<|endoftext|>the<|im_start|>", addBos: false, parseSpecial: true));
        var literal = tok.Encode("<|endoftext|>the", addBos: false, parseSpecial: false);
        // GPT-2 pattern: "<|" punctuation run, "endoftext" letters, "|>" punctuation run, "the".
        int[] expected = [.. "<|endoftext|>".Select(B), B('t'), 257];
        Assert.Equal(expected, literal);
        Assert.True(tok.IsSpecial(263) && tok.IsSpecial(264) && !tok.IsSpecial(257));
        Assert.Empty(tok.TokenBytes(263, -1).ToArray());
        Assert.Equal("<|endoftext|>the", tok.Decode(literal));
        Assert.Equal(264, tok.TokenId("<|im_start|>"));
        Assert.Equal("<|im_start|>", tok.TokenText(264));
    }

    [Fact]
    public void Decode_AnyText_RoundTripsThroughBytes()
    {
        foreach (var style in new[] { "gpt2", "llama3", "qwen2" })
        {
            var tok = Load(style);
            foreach (var s in TokenizerSamples.Multilingual.Append(TokenizerSamples.AllJoined))
            {
                var ids = tok.Encode(s, addBos: false);
                string expected = style == "qwen2" ? QuantServe.Engine.Tokenization.Text.UnicodeNormalization.Normalize(s, NormalizationForm.FormC) : s;
                Assert.Equal(expected, tok.Decode(ids));
                var stream = new Utf8StreamDecoder(tok);
                var sb = new StringBuilder();
                foreach (int id in ids) stream.Append(id, sb);
                stream.Flush(sb);
                Assert.Equal(expected, sb.ToString());
            }
        }
    }

    [Fact]
    public void Encode_Llama3Style_IgnoreMergesTakesWholeWordAndTemplateAddsBos()
    {
        // Without the (Ġ hello) merge, " hello" can only become Ġhello through ignore_merges.
        var merges = ByteLevelVocabulary.Merges.Where(m => m != ("Ġ", "hello")).ToArray();
        var llama = Load("llama3", merges: merges);
        Assert.Equal(263, llama.BosId);
        Assert.True(llama.AddBosByDefault);
        Assert.Equal([263, 262], llama.Encode(" hello", addBos: true));
        var noIgnore = Load("llama3", ignoreMerges: false, merges: merges);
        Assert.Equal([B(' '), 261], noIgnore.Encode(" hello", addBos: false));
    }

    [Fact]
    public void Encode_Digits_Llama3GroupsOfThreeQwen2SingleDigits()
    {
        // Llama-3: \p{N}{1,3} → "123","45" → (1 2),(12 3) → 266; "45" stays bytes. Qwen2: one digit per word.
        Assert.Equal([266, B('4'), B('5')], Load("llama3").Encode("12345", addBos: false));
        Assert.Equal("12345".Select(B).ToArray(), Load("qwen2").Encode("12345", addBos: false));
        // GPT-2: " ?\p{N}+" keeps the run together, so (1 2) then (12 3) merge and 4, 5 stay.
        Assert.Equal([266, B('4'), B('5')], Load("gpt2").Encode("12345", addBos: false));
    }

    [Fact]
    public void Encode_Qwen2Style_NormalizesToNfcFirst()
    {
        var tok = Load("qwen2");
        Assert.Equal(tok.Encode("caf\u00e9", false), tok.Encode("cafe\u0301", false));
        Assert.Equal([B('c'), B('a'), B('f'), 0xC3, 0xA9], tok.Encode("cafe\u0301", false));
    }

    [Fact]
    public void Read_ConfigBosEosAndFlags_AppliedToTokenizer()
    {
        const string config = """{"bos_token": {"content": "<|im_start|>"}, "eos_token": "<|endoftext|>", "add_bos_token": true, "add_eos_token": true, "chat_template": "{{ messages }}"}""";
        var files = HfTokenizerJson.FromJson(ByteLevelVocabulary.Json("gpt2"), config);
        Assert.Equal(264, files.Tokenizer.BosId);
        Assert.Equal(263, files.Tokenizer.EosId);
        Assert.True(files.Tokenizer.AddBosByDefault);
        Assert.True(files.AddEos);
        Assert.Equal("{{ messages }}", files.ChatTemplate);
        Assert.Equal([264, B('t'), 257], files.Tokenizer.Encode("the", addBos: true));
    }

    [Fact]
    public void FromGguf_SameVocabulary_MatchesTokenizerJson()
    {
        var pieces = ByteLevelVocabulary.Pieces();
        pieces.Add("<|im_start|>");
        pieces.Add("12");
        pieces.Add("123");
        var types = pieces.Select((p, i) => i is 263 or 264 ? TokenType.Control : TokenType.Normal).ToList();
        var merges = ByteLevelVocabulary.Merges.Select(m => $"{m.Item1} {m.Item2}").ToList();
        var gguf = ByteLevelBpeTokenizer.FromGguf("test.gguf", pieces, types, merges, "llama-bpe", bosId: 263, eosId: 264, addBos: true);
        var json = Load("llama3");
        foreach (var s in TokenizerSamples.Multilingual.Append("<|endoftext|>the hello<|im_start|> 12345"))
        {
            Assert.Equal(json.Encode(s, true, parseSpecial: true), gguf.Encode(s, true, parseSpecial: true));
            Assert.Equal(json.Encode(s, true), gguf.Encode(s, true));
        }
        Assert.True(gguf.IsSpecial(264));
        var gpt2 = ByteLevelBpeTokenizer.FromGguf("test.gguf", pieces, types, merges, "gpt2", 263, 263, false);
        Assert.Equal(Load("gpt2").Encode("the hello 12345", false), gpt2.Encode("the hello 12345", false));
    }

    [Fact]
    public void FromGguf_UnknownPreTokenizerOrBadMerge_ThrowsNamingFile()
    {
        var pieces = ByteLevelVocabulary.Pieces();
        var e = Assert.Throws<ModelLoadException>(() => ByteLevelBpeTokenizer.FromGguf("m.gguf", pieces, null, ["h e"], "klingon", 0, 0, false));
        Assert.Equal("m.gguf", e.File);
        Assert.Contains("klingon", e.Problem);
        e = Assert.Throws<ModelLoadException>(() => ByteLevelBpeTokenizer.FromGguf("m.gguf", pieces, null, ["h x"], "gpt2", 0, 0, false));
        Assert.Contains("'hx'", e.Problem);
        e = Assert.Throws<ModelLoadException>(() => ByteLevelBpeTokenizer.FromGguf("m.gguf", pieces, null, ["he"], "gpt2", 0, 0, false));
        Assert.Contains("merges[0]", e.Problem);
    }

    [Fact]
    public void Encode_AddedTokenWithLStripAndRStrip_SwallowsAdjacentSpaces()
    {
        string json = ByteLevelVocabulary.Json("gpt2", stripAroundImStart: true);
        var tok = HfTokenizerJson.FromJson(json).Tokenizer;
        Assert.Equal([B('t'), 257, 264, B('t'), 257], tok.Encode("the  <|im_start|>  the", addBos: false, parseSpecial: true));
    }
}
