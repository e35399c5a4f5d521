using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Tokenization;

public sealed class HfTokenizerFolderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qs-tokdir-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Read_ConfigWithNamedTemplates_PicksDefaultTemplate()
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), ByteLevelVocabulary.Json("gpt2"));
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"),
            """{"eos_token": {"content": "<|endoftext|>", "lstrip": false}, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}""");
        var files = HfTokenizerJson.Read(_dir);
        Assert.Equal("D", files.ChatTemplate);
        Assert.Equal(263, files.Tokenizer.EosId);
        Assert.Equal(Path.Combine(_dir, "tokenizer_config.json"), files.TokenizerConfigPath);
        Assert.Equal(Path.Combine(_dir, "tokenizer.json"), files.TokenizerJsonPath);
    }

    [Fact]
    public void Read_TemplateInJinjaFile_ReadWhenConfigHasNone()
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), ByteLevelVocabulary.Json("llama3"));
        File.WriteAllText(Path.Combine(_dir, "chat_template.jinja"), "{% for m in messages %}{{ m.content }}{% endfor %}");
        var files = HfTokenizerJson.Read(_dir);
        Assert.Equal("{% for m in messages %}{{ m.content }}{% endfor %}", files.ChatTemplate);
        Assert.Null(files.TokenizerConfigPath);
        Assert.True(files.Tokenizer.AddBosByDefault); // from the post-processor template, as no config says otherwise
        Assert.Equal(-1, files.Tokenizer.EosId);
    }

    [Fact]
    public void Read_ConfigDisablesBos_OverridesPostProcessor()
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), ByteLevelVocabulary.Json("llama3"));
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), """{"add_bos_token": false, "bos_token": "<|endoftext|>"}""");
        var tok = HfTokenizerJson.Load(_dir);
        Assert.False(tok.AddBosByDefault);
        Assert.Equal(263, tok.BosId);
    }
}
