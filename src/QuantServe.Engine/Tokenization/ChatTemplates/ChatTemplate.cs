namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>A rendered chat prompt and whether the tokenizer should still prepend BOS when encoding it.</summary>
/// <param name="Text">The rendered template (special-token texts such as <c>&lt;|im_start|&gt;</c> included: encode with parseSpecial).</param>
/// <param name="AddBos">False when the template already wrote the BOS text, so encoding must not add a second one.</param>
public sealed record ChatPrompt(string Text, bool AddBos);

/// <summary>One chat message. <paramref name="Fields"/> adds further keys the template may read
/// (<c>tool_calls</c>, <c>tool_call_id</c>, <c>name</c>); values may be strings, numbers, lists, dictionaries or JSON.</summary>
public sealed record ChatMessage(string Role, string Content, IReadOnlyDictionary<string, object?>? Fields = null);

/// <summary>
/// Turns a conversation into the prompt text a model was trained on, by rendering the model's Jinja chat template
/// (tokenizer_config.json <c>chat_template</c> or GGUF <c>tokenizer.chat_template</c>) with the variables Hugging Face
/// passes: <c>messages</c> (list of {role, content, ...}), <c>add_generation_prompt</c>, <c>bos_token</c>,
/// <c>eos_token</c>, <c>tools</c> = none and <c>documents</c> = none, plus caller extras (which override).
/// Parse once per model (the constructor does the parsing); <see cref="Render"/> is thread-safe.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>
    /// The template used for models that ship none: each message becomes <c>"{role}: {content}\n"</c> and the
    /// generation prompt is <c>"assistant:"</c> (no trailing space, so the model's first token carries its own
    /// leading space). No BOS/EOS text is emitted; the tokenizer adds BOS when encoding.
    /// Example: <c>"system: Be brief.\nuser: Hi\nassistant:"</c>.
    /// </summary>
    public const string PlainTemplateSource =
        "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}";

    private static readonly Lazy<ChatTemplate> PlainInstance = new(() => new ChatTemplate(PlainTemplateSource, isPlain: true));

    private readonly JinjaTemplate _template;

    /// <summary>Parses a model's template; a syntax error throws <see cref="JinjaException"/> (line and column).</summary>
    public ChatTemplate(string source) : this(source, isPlain: false) { }

    private ChatTemplate(string source, bool isPlain)
    {
        _template = new JinjaTemplate(source);
        IsPlain = isPlain;
    }

    /// <summary>The documented plain template (<see cref="PlainTemplateSource"/>).</summary>
    public static ChatTemplate Plain => PlainInstance.Value;

    /// <summary>The model's template, or <see cref="Plain"/> when <paramref name="source"/> is null or blank.</summary>
    public static ChatTemplate ForModel(string? source) => string.IsNullOrWhiteSpace(source) ? Plain : new ChatTemplate(source);

    /// <summary>Whether this is the plain fallback.</summary>
    public bool IsPlain { get; }

    /// <summary>The Jinja source.</summary>
    public string Source => _template.Source;

    /// <summary>Clock for <c>strftime_now</c> (defaults to the system clock; tests pin it).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Renders the conversation. Throws <see cref="JinjaException"/> when the template fails or rejects the
    /// conversation (<see cref="JinjaException.RaisedByTemplate"/>, e.g. roles that do not alternate).
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string bosToken = "", string eosToken = "",
        IReadOnlyDictionary<string, object?>? extraVariables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<object?>(messages.Count);
        foreach (var m in messages)
        {
            var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content };
            if (m.Fields != null) foreach (var kv in m.Fields) d[kv.Key] = JinjaValue.From(kv.Value);
            list.Add(d);
        }
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
            ["tools"] = null,
            ["documents"] = null,
        };
        if (extraVariables != null) foreach (var kv in extraVariables) vars[kv.Key] = kv.Value;
        return _template.Render(vars, Clock);
    }

    /// <summary>
    /// Renders with the tokenizer's own BOS/EOS texts (<see cref="Tokenizer.TokenText"/>) and decides BOS for encoding:
    /// the tokenizer's default, unless the text already starts with the BOS text (templates such as Llama-2's and
    /// Llama-3's write it themselves; adding another would double it).
    /// </summary>
    public ChatPrompt RenderPrompt(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, Tokenizer tokenizer,
        IReadOnlyDictionary<string, object?>? extraVariables = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        string bos = tokenizer.BosId >= 0 ? tokenizer.TokenText(tokenizer.BosId) : "";
        string eos = tokenizer.EosId >= 0 ? tokenizer.TokenText(tokenizer.EosId) : "";
        string text = Render(messages, addGenerationPrompt, bos, eos, extraVariables);
        bool templateWroteBos = bos.Length > 0 && text.StartsWith(bos, StringComparison.Ordinal);
        return new ChatPrompt(text, tokenizer.AddBosByDefault && !templateWroteBos);
    }
}
