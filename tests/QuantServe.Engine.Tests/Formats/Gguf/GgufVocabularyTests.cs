using System.Text.Json;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.Bpe;
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

    /// <summary>The F16 prose file with its vocabulary replaced by a small byte-level one: the 256 byte pieces,
    /// "th", "the", "Ġthe" (from merges "t h", "th e", "Ġ the") and three control tokens.</summary>
    private static string WithByteLevelVocabulary(TempDir dir, string? pre, bool withMerges = true)
    {
        var tokens = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.ByteToChar((byte)b).ToString()).ToList();
        tokens.AddRange(["th", "the", "\u0120the", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]);
        var types = tokens.Select((_, i) => i >= 259 ? 3 : 1).ToArray();
        string path = dir.File("bytelevel.gguf");
        using var source = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        var w = GgufWriter.FromFile(source);
        var m = w.Metadata;
        m.Remove("tokenizer.ggml.scores");
        m.Remove("tokenizer.ggml.unknown_token_id");
        m.Set("tokenizer.ggml.model", GgufValue.FromString("gpt2"));
        if (pre != null) m.Set("tokenizer.ggml.pre", GgufValue.FromString(pre));
        m.Set("tokenizer.ggml.tokens", GgufValue.FromArray(tokens));
        m.Set("tokenizer.ggml.token_type", GgufValue.FromArray(types));
        if (withMerges) m.Set("tokenizer.ggml.merges", GgufValue.FromArray(["t h", "th e", "\u0120 the"]));
        m.Set("tokenizer.ggml.bos_token_id", GgufValue.FromUInt32(259));
        m.Set("tokenizer.ggml.eos_token_id", GgufValue.FromUInt32(260));
        m.Set("tokenizer.ggml.eot_token_id", GgufValue.FromUInt32(261));
        m.Set("tokenizer.chat_template", GgufValue.FromString("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"));
        w.Write(path);
        return path;
    }

    [Theory]
    [InlineData("llama-bpe", true)]
    [InlineData("gpt2", false)]
    public void Load_Gpt2VocabularyGguf_UsesByteLevelBpeWithStopIdsAndTemplate(string pre, bool addsBos)
    {
        using var dir = new TempDir();
        using var model = ModelLoader.Load(WithByteLevelVocabulary(dir, pre));
        var tokenizer = Assert.IsType<ByteLevelBpeTokenizer>(model.Tokenizer);
        Assert.Equal(addsBos, tokenizer.AddBosByDefault);
        Assert.Equal([259, 257, 258, (int)'!'], tokenizer.Encode("the the!", addBos: true));
        Assert.Equal("the the!", tokenizer.Decode([259, 257, 258, 33]));
        Assert.Equal([260, 261], model.Generation.StopTokenIds);
        Assert.StartsWith("{{ bos_token }}", model.ChatTemplate);
    }

    [Fact]
    public void Load_Gpt2VocabularyWithoutMerges_ThrowsNamingTheKey()
    {
        using var dir = new TempDir();
        string path = WithByteLevelVocabulary(dir, "gpt2", withMerges: false);
        var ex = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains("'tokenizer.ggml.merges' is missing", ex.Message);
        Assert.Contains(path, ex.Message);
    }
}
