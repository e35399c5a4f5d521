using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>Broken tokenizer folders must fail with a <see cref="ModelLoadException"/> naming the file and the problem.</summary>
public sealed class HfTokenizerJsonErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qs-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ModelLoadException LoadBroken(string tokenizerJson, string? config = null)
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), tokenizerJson);
        if (config != null) File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), config);
        return Assert.Throws<ModelLoadException>(() => HfTokenizerJson.Load(_dir));
    }

    private string TokenizerPath => Path.Combine(_dir, "tokenizer.json");

    [Fact]
    public void Load_MissingModelSection_ThrowsNamingFileAndModel()
    {
        var e = LoadBroken("""{"version": "1.0", "added_tokens": []}""");
        Assert.Equal(TokenizerPath, e.File);
        Assert.Contains("'model'", e.Problem);
        Assert.Contains(TokenizerPath, e.Message);
    }

    [Fact]
    public void Load_UnknownModelType_ThrowsNamingType()
    {
        var e = LoadBroken("""{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}""");
        Assert.Equal(TokenizerPath, e.File);
        Assert.Contains("unsupported model type 'Unigram'", e.Problem);
    }

    [Fact]
    public void Load_MalformedJson_ThrowsMalformed()
    {
        var e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0,, }""");
        Assert.Equal(TokenizerPath, e.File);
        Assert.Contains("malformed JSON", e.Problem);
    }

    [Fact]
    public void Load_MergeWithMissingToken_ThrowsNamingMergeAndToken()
    {
        var e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]}}""");
        Assert.Equal(TokenizerPath, e.File);
        Assert.Contains("merge 1", e.Problem);
        Assert.Contains("'c'", e.Problem);
        e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}""");
        Assert.Contains("'ab'", e.Problem);
    }

    [Fact]
    public void Load_MalformedMergeEntry_ThrowsNamingIndex()
    {
        var e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["ab"]}}""");
        Assert.Contains("model.merges[0]", e.Problem);
        e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a"]]}}""");
        Assert.Contains("model.merges[0]", e.Problem);
    }

    [Fact]
    public void Load_UnsupportedPipelineParts_ThrowNamingThem()
    {
        const string model = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}";
        Assert.Contains("pre_tokenizer type 'BertPreTokenizer'", LoadBroken($$"""{"pre_tokenizer": {"type": "BertPreTokenizer"}, {{model}}}""").Problem);
        Assert.Contains("decoder type 'WordPiece'", LoadBroken($$"""{"decoder": {"type": "WordPiece"}, {{model}}}""").Problem);
        Assert.Contains("normalizer.normalizers[0] type 'BertNormalizer'",
            LoadBroken($$"""{"normalizer": {"type": "Sequence", "normalizers": [{"type": "BertNormalizer"}]}, {{model}}}""").Problem);
        Assert.Contains("pattern.Regex", LoadBroken($$"""{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a++("}, "behavior": "Isolated"}, {{model}}}""").Problem);
    }

    [Fact]
    public void Load_VocabProblems_ThrowNamingThem()
    {
        Assert.Contains("model.vocab", LoadBroken("""{"model": {"type": "BPE", "merges": []}}""").Problem);
        Assert.Contains("both 'a' and 'b'", LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}}""").Problem);
        Assert.Contains("unk_token '<unk>'", LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0}, "unk_token": "<unk>"}}""").Problem);
    }

    [Fact]
    public void Load_ConfigNamingUnknownBos_ThrowsNamingConfigFile()
    {
        var e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", """{"bos_token": "<s>"}""");
        Assert.Equal(Path.Combine(_dir, "tokenizer_config.json"), e.File);
        Assert.Contains("bos_token '<s>'", e.Problem);
        e = LoadBroken("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "{ nope");
        Assert.Equal(Path.Combine(_dir, "tokenizer_config.json"), e.File);
    }

    [Fact]
    public void Load_FolderWithoutTokenizerJson_ThrowsFileNotFound()
    {
        var e = Assert.Throws<ModelLoadException>(() => HfTokenizerJson.Load(_dir));
        Assert.Equal(TokenizerPath, e.File);
        Assert.Contains("not found", e.Problem);
    }
}
