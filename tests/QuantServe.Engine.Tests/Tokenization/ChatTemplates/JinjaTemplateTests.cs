using System.Text.Json;
using QuantServe.Engine.Tokenization.ChatTemplates;

namespace QuantServe.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>Engine features, each case checked against Python jinja2's output (jinja-cases.json, HF settings).</summary>
public class JinjaTemplateTests
{
    private static readonly Lazy<Dictionary<string, JsonElement>> Cases = new(() =>
        TemplateResources.Load("jinja-cases.json").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!));

    public static TheoryData<string> RenderCases()
    {
        var d = new TheoryData<string>();
        foreach (var (name, c) in Cases.Value) if (c.TryGetProperty("expected", out _)) d.Add(name);
        return d;
    }

    public static TheoryData<string> ErrorCases()
    {
        var d = new TheoryData<string>();
        foreach (var (name, c) in Cases.Value) if (c.TryGetProperty("error", out _)) d.Add(name);
        return d;
    }

    private static Dictionary<string, object?> Vars(JsonElement c) =>
        c.GetProperty("vars").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());

    [Theory]
    [MemberData(nameof(RenderCases))]
    public void Render_FeatureCase_MatchesJinja2(string name)
    {
        var c = Cases.Value[name];
        var t = new JinjaTemplate(c.GetProperty("template").GetString()!);
        Assert.Equal(c.GetProperty("expected").GetString(), t.Render(Vars(c)));
    }

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public void Render_ErrorCase_ThrowsJinjaException(string name)
    {
        var c = Cases.Value[name];
        var e = Assert.Throws<JinjaException>(() => new JinjaTemplate(c.GetProperty("template").GetString()!).Render(Vars(c)));
        Assert.True(e.Line >= 1 && e.Column >= 1);
    }

    [Fact]
    public void Render_RaiseException_CarriesMessageAndPosition()
    {
        var t = new JinjaTemplate("ok\n  {{ raise_exception('roles must alternate') }}");
        var e = Assert.Throws<JinjaException>(() => t.Render(new Dictionary<string, object?>()));
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("roles must alternate", e.Problem);
        Assert.Equal(2, e.Line);
    }

    [Theory]
    [InlineData("{% if x %}never closed", "missing '{% endif %}'")]
    [InlineData("{% for %}{% endfor %}", "expected a name")]
    [InlineData("{{ 'unterminated }}", "unclosed tag")]
    [InlineData("{% endif %}", "without a matching")]
    [InlineData("{% frob %}", "unsupported statement 'frob'")]
    [InlineData("{{ a b }}", "unexpected 'b'")]
    public void Parse_MalformedTemplate_ThrowsClearError(string source, string fragment)
    {
        var e = Assert.Throws<JinjaException>(() => new JinjaTemplate(source));
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Render_UndefinedVariable_RendersEmptyAndIsFalsy()
    {
        var t = new JinjaTemplate("[{{ missing }}]{% if missing %}T{% else %}F{% endif %}{{ missing is defined }}");
        Assert.Equal("[]FFalse", t.Render(new Dictionary<string, object?>()));
    }

    [Fact]
    public void Render_DotNetValues_ConvertToTemplateValues()
    {
        var t = new JinjaTemplate("{{ xs | join(',') }} {{ m.k }} {{ n + 1 }} {{ f }} {{ b }}");
        var vars = new Dictionary<string, object?>
        {
            ["xs"] = new[] { "a", "b" },
            ["m"] = new Dictionary<string, object?> { ["k"] = "v" },
            ["n"] = 41,
            ["f"] = 0.5f,
            ["b"] = false,
        };
        Assert.Equal("a,b v 42 0.5 False", t.Render(vars));
    }

    [Theory]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested more than 100 calls")]
    [InlineData("{% set l = [] %}{{ l.append(l) }}{{ l }}", "nested more than 500 levels")]
    [InlineData("{{ 'x' * 100000000 }}", "string repetition")]
    public void Render_HostileTemplate_FailsWithClearError(string source, string fragment)
    {
        var e = Assert.Throws<JinjaException>(() => new JinjaTemplate(source).Render(new Dictionary<string, object?>()));
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Parse_DeeplyNestedExpression_FailsWithClearError()
    {
        string source = "{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}";
        var e = Assert.Throws<JinjaException>(() => new JinjaTemplate(source));
        Assert.Contains("nested more than", e.Message);
        string nots = "{{ " + string.Concat(Enumerable.Repeat("not ", 5000)) + "x }}";
        Assert.Throws<JinjaException>(() => new JinjaTemplate(nots));
        string ifs = string.Concat(Enumerable.Repeat("{% if x %}", 5000)) + string.Concat(Enumerable.Repeat("{% endif %}", 5000));
        Assert.Throws<JinjaException>(() => new JinjaTemplate(ifs));
    }
}
