using System.Text.Json.Nodes;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization.Bpe;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>Newer conversions of Llama-2-style vocabularies express the same scheme with a Metaspace pre-tokenizer
/// (prepend_scheme "first") instead of the Prepend+Replace normalizer; prose-15m's vocabulary rewritten that way
/// must tokenize plain text identically.</summary>
public class MetaspaceVariantTests
{
    private static readonly Lazy<string> ProseJson = new(() => File.ReadAllText(SharedAssets.Path("models", "prose-15m", "tokenizer.json")));

    private static BpeTokenizer Variant(string preTokenizer, string? decoder = null)
    {
        var root = JsonNode.Parse(ProseJson.Value)!.AsObject();
        root["normalizer"] = null;
        root["pre_tokenizer"] = JsonNode.Parse(preTokenizer);
        if (decoder != null) root["decoder"] = JsonNode.Parse(decoder);
        return HfTokenizerJson.FromJson(root.ToJsonString()).Tokenizer;
    }

    private const string MetaspaceFirst = """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""";

    [Fact]
    public void Encode_MetaspaceFirstPreTokenizer_SameIdsAsLegacyNormalizer()
    {
        var variant = Variant(MetaspaceFirst);
        var legacy = ProseTokenizers.Hf.Tokenizer;
        foreach (var line in ProseTokenizers.EvalLines("fortunes.txt").Concat(TokenizerSamples.Multilingual).Where(l => !l.StartsWith(' ')))
            Assert.Equal(legacy.Encode(line, addBos: true), variant.Encode(line, addBos: true));
        // Metaspace only prepends when the text does not already start with a space; the legacy normalizer always does.
        Assert.Equal(["▁", "▁x"], variant.Encode("  x", addBos: false).Select(variant.TokenText).ToArray());
        Assert.Equal(["▁▁", "▁x"], legacy.Encode("  x", addBos: false).Select(legacy.TokenText).ToArray());
    }

    [Fact]
    public void Encode_MetaspaceFirstAfterSpecialToken_AddsNoSpaceUnlikeLegacy()
    {
        var variant = Variant(MetaspaceFirst);
        var legacy = ProseTokenizers.Hf.Tokenizer;
        var v = variant.Encode("</s>Hello", addBos: false, parseSpecial: true);
        var l = legacy.Encode("</s>Hello", addBos: false, parseSpecial: true);
        Assert.Equal(2, v[0]);
        Assert.Equal(2, l[0]);
        Assert.StartsWith("▁", legacy.TokenText(l[1]));
        Assert.DoesNotContain('▁', variant.TokenText(v[1]));
        Assert.Equal("</s>Hello".Replace("</s>", ""), variant.Decode(v[1..], previousToken: v[0]));
    }

    [Fact]
    public void Encode_MetaspaceWithSplit_SplitsRunsOfSpacesIntoSeparateWords()
    {
        var split = Variant("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""");
        var ids = split.Encode("a   b", addBos: false);
        // Words "▁a", "▁", "▁", "▁b": the two lone spaces cannot merge into "▁▁" across the split.
        Assert.Equal(["▁a", "▁", "▁", "▁b"], ids.Select(split.TokenText).ToArray());
        Assert.Equal(["▁a", "▁▁", "▁b"], ProseTokenizers.Hf.Tokenizer.Encode("a   b", addBos: false).Select(ProseTokenizers.Hf.Tokenizer.TokenText).ToArray());
    }

    [Fact]
    public void Decode_MetaspaceDecoder_DropsPrefixOnlyOnFirstToken()
    {
        var tok = Variant(MetaspaceFirst, """{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}]}""");
        foreach (var line in ProseTokenizers.EvalLines("bible.txt").Where(l => l.Length > 0 && !char.IsWhiteSpace(l[0])))
            Assert.Equal(line, tok.Decode(tok.Encode(line, addBos: true)));
        int the = tok.TokenId("▁the");
        Assert.Equal(" the"u8.ToArray(), tok.TokenBytes(the, 450).ToArray());
        Assert.Equal("the"u8.ToArray(), tok.TokenBytes(the, tok.BosId).ToArray());
    }
}
