using System.Text;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>prose-15m's tokenizer.json (merge ranks) and llama-32k.bin (SentencePiece scores) are the same LLaMA-2
/// vocabulary; both must tokenize real text identically and decode it back exactly.</summary>
public class LlamaVocabularyParityTests
{
    public static TheoryData<string> EvalFiles => new() { "bible.txt", "pydoc.txt", "fortunes.txt", "stories260k-samples.txt" };

    [Theory]
    [MemberData(nameof(EvalFiles))]
    public void Encode_EvalLines_TokenizerJsonAndLlama2cVocabGiveSameIds(string file)
    {
        var hf = ProseTokenizers.Hf.Tokenizer;
        var spm = ProseTokenizers.SentencePiece;
        var mismatches = new List<string>();
        foreach (var line in ProseTokenizers.EvalLines(file))
        {
            var a = hf.Encode(line, addBos: true);
            var b = spm.Encode(line, addBos: true);
            if (!a.AsSpan().SequenceEqual(b)) mismatches.Add($"{line}\n  hf:  {string.Join(",", a)}\n  spm: {string.Join(",", b)}");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} lines differ, e.g.\n{string.Join("\n", mismatches.Take(5))}");
    }

    [Theory]
    [MemberData(nameof(EvalFiles))]
    public void Encode_WholeEvalFile_TokenizerJsonAndLlama2cVocabGiveSameIds(string file)
    {
        string text = ProseTokenizers.EvalText(file);
        Assert.Equal(ProseTokenizers.SentencePiece.Encode(text, addBos: true), ProseTokenizers.Hf.Tokenizer.Encode(text, addBos: true));
    }

    [Theory]
    [MemberData(nameof(EvalFiles))]
    public void Decode_EncodedEvalLines_RoundTripsExactly(string file)
    {
        Tokenizer[] tokenizers = [ProseTokenizers.Hf.Tokenizer, ProseTokenizers.SentencePiece];
        foreach (var tok in tokenizers)
            foreach (var line in ProseTokenizers.EvalLines(file))
            {
                Assert.Equal(line, tok.Decode(tok.Encode(line, addBos: true)));
                Assert.Equal(line, tok.Decode(tok.Encode(line, addBos: false)));
            }
    }

    [Theory]
    [MemberData(nameof(EvalFiles))]
    public void Decode_EncodedWholeEvalFile_RoundTripsExactly(string file)
    {
        string text = ProseTokenizers.EvalText(file);
        Tokenizer[] tokenizers = [ProseTokenizers.Hf.Tokenizer, ProseTokenizers.SentencePiece];
        foreach (var tok in tokenizers) Assert.Equal(text, tok.Decode(tok.Encode(text, addBos: true)));
    }
}

public class LlamaVocabularyEdgeCaseTests
{
    [Fact]
    public void Encode_MultilingualSamples_TokenizerJsonAndLlama2cVocabAgreeAndRoundTrip()
    {
        var hf = ProseTokenizers.Hf.Tokenizer;
        var spm = ProseTokenizers.SentencePiece;
        foreach (var s in TokenizerSamples.Multilingual.Append(TokenizerSamples.AllJoined))
        {
            Assert.Equal(spm.Encode(s, addBos: true), hf.Encode(s, addBos: true));
            Assert.Equal(s, hf.Decode(hf.Encode(s, addBos: true)));
            Assert.Equal(s, spm.Decode(spm.Encode(s, addBos: true)));
        }
    }

    [Theory]
    [InlineData("<s>Hello</s>")]
    [InlineData("[INST] hi [/INST] there</s><s>[INST] again")]
    [InlineData("a<unk>b</s>")]
    [InlineData("</s></s>  x")]
    public void Encode_SpecialTokenText_BothParseTheSameWay(string text)
    {
        var hf = ProseTokenizers.Hf.Tokenizer;
        var spm = ProseTokenizers.SentencePiece;
        var parsed = hf.Encode(text, addBos: true, parseSpecial: true);
        Assert.Equal(spm.Encode(text, addBos: true, parseSpecial: true), parsed);
        Assert.Equal(spm.Encode(text, addBos: true, parseSpecial: false), hf.Encode(text, addBos: true, parseSpecial: false));
        Assert.Contains(parsed[1..], id => hf.IsSpecial(id));
        Assert.DoesNotContain(hf.Encode(text, addBos: false, parseSpecial: false), id => hf.IsSpecial(id));
    }
}

public class LlamaVocabularyWordBoundaryTests
{
    [Fact]
    public void Encode_LiteralLowerBlockCharacter_ReadsAsSpaceInBothTokenizers()
    {
        // SentencePiece spells a space U+2581, so an input U+2581 is indistinguishable from a space (as in HF and llama.cpp).
        foreach (var tok in new QuantServe.Engine.Tokenization.Tokenizer[] { ProseTokenizers.Hf.Tokenizer, ProseTokenizers.SentencePiece })
        {
            Assert.Equal(tok.Encode("a b", addBos: true), tok.Encode("a\u2581b", addBos: true));
            Assert.Equal("a b", tok.Decode(tok.Encode("a\u2581b", addBos: true)));
        }
    }
}
