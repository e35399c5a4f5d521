using System.Text.Json;
using QuantServe.Engine.Tokenization.ChatTemplates;

namespace QuantServe.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Real chat templates (as the models' tokenizer_config.json ship them) rendered for fixed conversations and compared
/// with what Python jinja2 renders with Hugging Face's settings (the "expected" entries of each resource file).
/// </summary>
public class ChatTemplateTests
{
    private static readonly ChatMessage[] WithSystem =
    [
        new("system", "You are a helpful assistant."),
        new("user", "Hello"),
        new("assistant", "  Hi there! How can I help?  "),
        new("user", "What is 2+2?\n"),
    ];

    private static ChatMessage[] WithoutSystem => WithSystem[1..];

    private static readonly TimeProvider ReferenceClock = new FixedClock(new DateTimeOffset(2025, 3, 7, 14, 5, 0, TimeSpan.Zero));

    private const string ToolsJson =
        """[{"type":"function","function":{"name":"get_weather","description":"Get the weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"days":{"type":"integer"}},"required":["city"]}}}]""";

    private static ChatMessage[] ToolCallConversation =>
    [
        new("user", "Weather in Paris?"),
        new("assistant", "", new Dictionary<string, object?>
        {
            ["tool_calls"] = JsonDocument.Parse("""[{"id":"abc123def","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}]""").RootElement,
        }),
        new("tool", "{\"temp\": 20}", new Dictionary<string, object?> { ["tool_call_id"] = "abc123def" }),
    ];

    public static TheoryData<string, string> ReferenceCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in TemplateResources.ModelFiles())
            if (TemplateResources.Load(file).TryGetProperty("expected", out var exp))
                foreach (var p in exp.EnumerateObject()) data.Add(file, p.Name);
        return data;
    }

    public static TheoryData<string, string> RejectedCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in TemplateResources.ModelFiles())
            if (TemplateResources.Load(file).TryGetProperty("expected_error", out var exp))
                foreach (var p in exp.EnumerateObject()) data.Add(file, p.Name);
        return data;
    }

    private static (ChatMessage[] Messages, bool Generation, Dictionary<string, object?>? Extra) Case(string key)
    {
        string conv = key[..key.LastIndexOf('_')];
        bool gen = key.EndsWith("_gen", StringComparison.Ordinal);
        return conv switch
        {
            "system" => (WithSystem, gen, null),
            "nosystem" => (WithoutSystem, gen, null),
            "tools" => (WithoutSystem, gen, new() { ["tools"] = JsonDocument.Parse(ToolsJson).RootElement }),
            "toolcall" => (ToolCallConversation, gen, null),
            _ => throw new ArgumentException("unknown conversation " + conv),
        };
    }

    private static string Render(JsonElement cfg, string key)
    {
        // The references were rendered with strftime_now pinned to this moment.
        var template = new ChatTemplate(cfg.GetProperty("chat_template").GetString()!) { Clock = ReferenceClock };
        var (messages, gen, extra) = Case(key);
        return template.Render(messages, gen, cfg.GetProperty("bos_token").GetString()!, cfg.GetProperty("eos_token").GetString()!, extra);
    }

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void Render_RealModelTemplate_MatchesJinja2Reference(string file, string conversation)
    {
        var cfg = TemplateResources.Load(file);
        string expected = cfg.GetProperty("expected").GetProperty(conversation).GetString()!;
        Assert.Equal(expected, Render(cfg, conversation));
    }

    [Theory]
    [MemberData(nameof(RejectedCases))]
    public void Render_TemplateRejectsConversation_ThrowsTemplateMessage(string file, string conversation)
    {
        var cfg = TemplateResources.Load(file);
        string expected = cfg.GetProperty("expected_error").GetProperty(conversation).GetString()!;
        var e = Assert.Throws<JinjaException>(() => Render(cfg, conversation));
        Assert.True(e.RaisedByTemplate);
        Assert.Equal(expected, e.Problem);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Render_EveryModelTemplate_HasReferenceForSystemConversation()
    {
        // Guards the resource set itself: each model file must be checked against a system+user+assistant+user render or rejection.
        foreach (var file in TemplateResources.ModelFiles())
        {
            var cfg = TemplateResources.Load(file);
            bool rendered = cfg.TryGetProperty("expected", out var e) && e.TryGetProperty("system_gen", out _);
            bool rejected = cfg.TryGetProperty("expected_error", out var r) && r.TryGetProperty("system_gen", out _);
            Assert.True(rendered || rejected, file);
        }
        Assert.True(TemplateResources.ModelFiles().Count() >= 9);
    }

    [Fact]
    public void Render_Llama31DateStringVariable_OverridesDefaultDate()
    {
        var cfg = TemplateResources.Load("llama-3.1-instruct.json");
        var t = new ChatTemplate(cfg.GetProperty("chat_template").GetString()!);
        string s = t.Render(WithSystem, true, "<|begin_of_text|>", "<|eot_id|>", new Dictionary<string, object?> { ["date_string"] = "01 Jan 2030" });
        Assert.Contains("Today Date: 01 Jan 2030\n", s);
        Assert.DoesNotContain("26 Jul 2024", s);
    }

    [Fact]
    public void Render_StrftimeNow_UsesTemplateClock()
    {
        var t = new ChatTemplate("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}")
        {
            Clock = new FixedClock(new DateTimeOffset(2025, 3, 7, 14, 5, 0, TimeSpan.Zero)),
        };
        Assert.Equal("07 Mar 2025|2025-03-07 14:05", t.Render([], false));
    }

    [Fact]
    public void Render_PlainTemplate_RoleColonLinesEndingWithAssistant()
    {
        var t = ChatTemplate.ForModel(null);
        Assert.True(t.IsPlain);
        Assert.Equal("system: You are a helpful assistant.\nuser: Hello\nassistant:   Hi there! How can I help?  \nuser: What is 2+2?\n\nassistant:",
            t.Render(WithSystem, true));
        Assert.Equal("user: Hello\n", ChatTemplate.ForModel("  ").Render([new("user", "Hello")], false));
    }

    [Fact]
    public void ForModel_TemplateWithSyntaxError_ThrowsWithLineAndColumn()
    {
        var e = Assert.Throws<JinjaException>(() => ChatTemplate.ForModel("{% for m in messages %}\n{{ m.content + }}\n{% endfor %}"));
        Assert.Equal(2, e.Line);
        Assert.Contains("line 2", e.Message);
        Assert.False(e.RaisedByTemplate);
    }

    [Fact]
    public void RenderPrompt_TemplateWritesBos_TokenizerMustNotAddAnother()
    {
        var tok = QuantServe.Engine.Formats.Llama2c.Llama2cTokenizerFile.Read(
            QuantServe.Engine.Tests.TestSupport.SharedAssets.Path("tokenizers", "llama-32k.bin"), 32000);
        var llama2 = new ChatTemplate(TemplateResources.Load("llama-2-chat.json").GetProperty("chat_template").GetString()!);
        var prompt = llama2.RenderPrompt(WithSystem, true, tok);
        Assert.StartsWith("<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST]", prompt.Text);
        Assert.Contains(" Hi there! How can I help? </s><s>[INST] What is 2+2? [/INST]", prompt.Text);
        Assert.False(prompt.AddBos);
        var ids = tok.Encode(prompt.Text, prompt.AddBos, parseSpecial: true);
        Assert.Equal(tok.BosId, ids[0]);
        Assert.NotEqual(tok.BosId, ids[1]);

        var qwen = new ChatTemplate(TemplateResources.Load("qwen2-instruct.json").GetProperty("chat_template").GetString()!);
        Assert.Equal(tok.AddBosByDefault, qwen.RenderPrompt(WithSystem, true, tok).AddBos);
        Assert.True(ChatTemplate.Plain.RenderPrompt(WithSystem, true, tok).AddBos);
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }
}
