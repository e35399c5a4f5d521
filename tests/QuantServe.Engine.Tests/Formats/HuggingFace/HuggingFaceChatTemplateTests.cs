using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

public class HuggingFaceChatTemplateTests
{
    private const string Anchor = "\"unk_token\": \"<unk>\"";

    [Fact]
    public void Load_Prose15m_HasNoTemplate() => Assert.Null(HuggingFaceChatTemplate.Load(SharedAssets.Prose15m));

    [Fact]
    public void Load_StringTemplate_ReturnsIt()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("tokenizer_config.json", Anchor, Anchor + ", \"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"");
        Assert.Equal("{% for m in messages %}{{ m.content }}{% endfor %}", HuggingFaceChatTemplate.Load(temp.Dir));
    }

    [Fact]
    public void Load_NamedTemplates_ReturnsDefault()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("tokenizer_config.json", Anchor,
            Anchor + ", \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]");
        Assert.Equal("D", HuggingFaceChatTemplate.Load(temp.Dir));
    }

    [Fact]
    public void Load_JinjaFile_WinsOverTokenizerConfig()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("tokenizer_config.json", Anchor, Anchor + ", \"chat_template\": \"old\"");
        File.WriteAllText(temp.Path("chat_template.jinja"), "{{ bos_token }}new");
        Assert.Equal("{{ bos_token }}new", HuggingFaceChatTemplate.Load(temp.Dir));
    }

    [Fact]
    public void Load_TemplateOfWrongType_ThrowsNamingFile()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("tokenizer_config.json", Anchor, Anchor + ", \"chat_template\": 5");
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceChatTemplate.Load(temp.Dir));
        Assert.Equal(temp.Path("tokenizer_config.json"), e.File);
        Assert.Contains("chat_template", e.Problem);
    }
}
