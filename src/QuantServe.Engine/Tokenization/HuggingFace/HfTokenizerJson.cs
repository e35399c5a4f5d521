using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using QuantServe.Engine.Formats;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization.Bpe;
using QuantServe.Engine.Tokenization.Text;

namespace QuantServe.Engine.Tokenization.HuggingFace;

/// <summary>
/// Builds a <see cref="Tokenizer"/> from a Hugging Face <c>tokenizer.json</c> (+ optional <c>tokenizer_config.json</c>).
/// Supported: model <c>BPE</c> (vocab; merges as "a b" strings or [a, b] arrays; byte_fallback, fuse_unk, unk_token,
/// ignore_merges); added_tokens (special, lstrip, rstrip, single_word); normalizers Sequence, Prepend, Replace, NFC,
/// NFD, NFKC, NFKD, Lowercase, Strip; pre-tokenizers Sequence, Metaspace, ByteLevel, Split, Digits, Whitespace,
/// WhitespaceSplit; decoders Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace. A ByteLevel
/// pre-tokenizer (or decoder) selects <see cref="ByteLevelBpeTokenizer"/>, anything else <see cref="MetaspaceBpeTokenizer"/>.
/// Anything else, and any malformed file, is a <see cref="ModelLoadException"/> naming the file and the problem.
/// </summary>
public static class HfTokenizerJson
{
    /// <summary>Loads the tokenizer in <paramref name="folder"/> (tokenizer.json, and tokenizer_config.json when present).</summary>
    public static Tokenizer Load(string folder) => Read(folder).Tokenizer;

    /// <summary>Loads the tokenizer in <paramref name="folder"/> with the settings of tokenizer_config.json.</summary>
    public static HfTokenizerFiles Read(string folder)
    {
        if (!Directory.Exists(folder)) throw new ModelLoadException(folder, "folder not found");
        string path = Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(path)) throw new ModelLoadException(path, "file not found (the folder needs a Hugging Face tokenizer.json)");
        string configPath = Path.Combine(folder, "tokenizer_config.json");
        string? config = File.Exists(configPath) ? ReadText(configPath) : null;
        string templatePath = Path.Combine(folder, "chat_template.jinja");
        var files = FromJson(ReadText(path), config, path, config != null ? configPath : null);
        if (files.ChatTemplate == null && File.Exists(templatePath))
            return new HfTokenizerFiles
            {
                Tokenizer = files.Tokenizer, AddEos = files.AddEos, TokenizerJsonPath = path,
                TokenizerConfigPath = files.TokenizerConfigPath, ChatTemplate = ReadText(templatePath),
            };
        return files;
    }

    /// <summary>Builds the tokenizer from the text of tokenizer.json and (optionally) tokenizer_config.json;
    /// the paths are only used to name the files in errors.</summary>
    public static HfTokenizerFiles FromJson(string tokenizerJson, string? configJson = null,
        string tokenizerPath = "tokenizer.json", string? configPath = "tokenizer_config.json")
    {
        using var doc = ParseJson(tokenizerJson, tokenizerPath);
        using var configDoc = configJson == null ? null : ParseJson(configJson, configPath ?? "tokenizer_config.json");
        var reader = new Reader(tokenizerPath);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw reader.Fail("the top level is not a JSON object");

        var normalizers = new List<Normalizer>();
        var preTokenizers = new List<PreTokenizer>();
        var decoder = new List<DecoderStep>();
        var (model, added, templateBos, templateEos) = JsonGuard.Read(tokenizerPath, () =>
        {
            var model = reader.Model(root);
            var added = reader.AddedTokens(root);
            reader.Normalizer(root.GetPropertyOrNull("normalizer"), "normalizer", normalizers);
            reader.PreTokenizer(root.GetPropertyOrNull("pre_tokenizer"), "pre_tokenizer", preTokenizers);
            reader.Decoder(root.GetPropertyOrNull("decoder"), "decoder", decoder);
            var (bos, eos) = reader.PostProcessorSpecials(root.GetPropertyOrNull("post_processor"));
            return (model, added, bos, eos);
        });

        int byteLevelAt = preTokenizers.FindIndex(p => p is ByteLevelPreTokenizer);
        if (byteLevelAt >= 0 && byteLevelAt != preTokenizers.Count - 1)
            throw reader.Fail("unsupported pre_tokenizer: steps after ByteLevel");
        bool byteLevel = byteLevelAt >= 0 || decoder.Any(d => d is ByteLevelDecoder);

        // Special-token settings: tokenizer_config.json wins; the post-processor's template fills the gaps.
        string? bosText = templateBos, eosText = null;
        bool addBos = templateBos != null, addEos = templateEos != null;
        string? chatTemplate = null;
        var cfgReader = new Reader(configPath ?? "tokenizer_config.json");
        if (configDoc != null)
        {
            var cfg = configDoc.RootElement;
            if (cfg.ValueKind != JsonValueKind.Object) throw cfgReader.Fail("the top level is not a JSON object");
            (bosText, eosText, addBos, addEos, chatTemplate) = JsonGuard.Read(configPath ?? "tokenizer_config.json", () =>
            {
                string? b = bosText, e = eosText, t = null;
                bool addB = addBos, addE = addEos;
                if (cfg.TryGetProperty("bos_token", out var bos)) b = cfgReader.TokenText(bos, "bos_token");
                if (cfg.TryGetProperty("eos_token", out var eos)) e = cfgReader.TokenText(eos, "eos_token");
                if (cfg.TryGetProperty("add_bos_token", out var ab)) addB = cfgReader.Bool(ab, "add_bos_token");
                if (cfg.TryGetProperty("add_eos_token", out var ae)) addE = cfgReader.Bool(ae, "add_eos_token");
                if (cfg.TryGetProperty("chat_template", out var ct)) t = cfgReader.ChatTemplate(ct);
                return (b, e, addB, addE, t);
            });
        }
        eosText ??= templateEos;

        int addedLimit = SparseIdLimit(model.Pieces.Length + added.Count);
        if (added.FirstOrDefault(t => t.Id >= addedLimit) is { } far)
            throw reader.Fail($"added token '{far.Content}' has id {far.Id}, far beyond the {model.Pieces.Length} vocabulary ids and {added.Count} added tokens (ids must be nearly dense)");

        var resolver = configDoc != null ? cfgReader : reader;
        int bosId = ResolveToken(model.Pieces, added, bosText, "bos_token", resolver);
        int eosId = ResolveToken(model.Pieces, added, eosText, "eos_token", resolver);
        var final = new BpeDefinition
        {
            Source = tokenizerPath,
            Pieces = model.Pieces,
            Merges = model.Merges,
            AddedTokens = added,
            Pipeline = new TextPipeline(normalizers, preTokenizers),
            Decoder = decoder,
            UnkToken = model.UnkToken,
            ByteFallback = model.ByteFallback,
            FuseUnk = model.FuseUnk,
            IgnoreMerges = model.IgnoreMerges,
            BosId = bosId,
            EosId = eosId,
            AddBos = addBos && bosId >= 0,
        };
        BpeTokenizer tokenizer = byteLevel ? new ByteLevelBpeTokenizer(final) : new MetaspaceBpeTokenizer(final);
        return new HfTokenizerFiles
        {
            Tokenizer = tokenizer,
            AddEos = addEos && eosId >= 0,
            ChatTemplate = chatTemplate,
            TokenizerJsonPath = tokenizerPath,
            TokenizerConfigPath = configDoc != null ? configPath : null,
        };
    }

    /// <summary>Largest id (exclusive) accepted for <paramref name="count"/> tokens: twice the count plus 1024 leaves room
    /// for the gaps real files have while bounding what a corrupt id can make the tokenizer allocate.</summary>
    private static int SparseIdLimit(int count) => (int)Math.Min(1 << 24, 2L * count + 1024);

    private static int ResolveToken(string?[] pieces, List<AddedToken> added, string? text, string name, Reader reader)
    {
        if (text == null) return -1;
        if (added.FindLast(t => t.Content == text) is { } token) return token.Id;
        int id = System.Array.IndexOf(pieces, text);
        return id >= 0 ? id : throw reader.Fail($"{name} '{text}' is not a token of the vocabulary");
    }

    private static string ReadText(string path)
    {
        try { return File.ReadAllText(path, Encoding.UTF8); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ModelLoadException(path, $"cannot read: {e.Message}", e); }
    }

    private static JsonDocument ParseJson(string json, string path)
    {
        try { return JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 }); }
        catch (JsonException e) { throw new ModelLoadException(path, $"malformed JSON: {e.Message}", e); }
    }

    private static JsonElement? GetPropertyOrNull(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private sealed record BpeModel(string?[] Pieces, (string, string)[] Merges, string? UnkToken, bool ByteFallback, bool FuseUnk, bool IgnoreMerges);

    /// <summary>Reads the parts of one file, failing with the file's name.</summary>
    private sealed class Reader(string path)
    {
        public ModelLoadException Fail(string problem) => new(path, problem);

        public BpeModel Model(JsonElement root)
        {
            if (root.GetPropertyOrNull("model") is not { } model) throw Fail("no 'model' section");
            if (model.ValueKind != JsonValueKind.Object) throw Fail("'model' is not an object");
            string type = model.GetPropertyOrNull("type") is { } t ? String(t, "model.type")
                : model.TryGetProperty("merges", out _) ? "BPE" : throw Fail("model.type is missing");
            if (type != "BPE") throw Fail($"unsupported model type '{type}' (only BPE is supported)");
            foreach (var name in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
                if (model.GetPropertyOrNull(name) is { } v && String(v, $"model.{name}").Length > 0)
                    throw Fail($"unsupported model.{name} '{v.GetString()}'");

            if (model.GetPropertyOrNull("vocab") is not { ValueKind: JsonValueKind.Object } vocab) throw Fail("model.vocab is missing or not an object");
            var entries = new List<(string Piece, int Id)>();
            int max = -1;
            foreach (var p in vocab.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0 || id >= 1 << 24)
                    throw Fail($"model.vocab['{p.Name}'] is not a valid id: {p.Value.GetRawText()}");
                entries.Add((p.Name, id));
                max = Math.Max(max, id);
            }
            // Ids index arrays sized by the largest one, so a lone huge id in a tiny file would allocate hundreds of MB.
            if (max >= SparseIdLimit(entries.Count))
                throw Fail($"model.vocab id {max} is far beyond its {entries.Count} entries (ids must be nearly dense)");
            var pieces = new string?[max + 1];
            foreach (var (piece, id) in entries)
            {
                if (pieces[id] != null) throw Fail($"model.vocab gives id {id} to both '{pieces[id]}' and '{piece}'");
                pieces[id] = piece;
            }

            var merges = new List<(string, string)>();
            if (model.GetPropertyOrNull("merges") is { } m)
            {
                if (m.ValueKind != JsonValueKind.Array) throw Fail("model.merges is not an array");
                int i = 0;
                foreach (var item in m.EnumerateArray())
                {
                    merges.Add(Merge(item, i));
                    i++;
                }
            }
            string? unk = model.GetPropertyOrNull("unk_token") is { } u ? String(u, "model.unk_token") : null;
            return new BpeModel(pieces, merges.ToArray(), unk, Flag(model, "byte_fallback"), Flag(model, "fuse_unk"), Flag(model, "ignore_merges"));
        }

        private (string, string) Merge(JsonElement item, int index)
        {
            if (item.ValueKind == JsonValueKind.String)
            {
                string s = item.GetString()!;
                int space = s.IndexOf(' ');
                if (space <= 0 || space == s.Length - 1 || s.IndexOf(' ', space + 1) >= 0)
                    throw Fail($"model.merges[{index}] '{s}' is not two pieces separated by one space");
                return (s[..space], s[(space + 1)..]);
            }
            if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
                return (item[0].GetString()!, item[1].GetString()!);
            throw Fail($"model.merges[{index}] is neither \"a b\" nor [\"a\", \"b\"]: {item.GetRawText()}");
        }

        public List<AddedToken> AddedTokens(JsonElement root)
        {
            var result = new List<AddedToken>();
            if (root.GetPropertyOrNull("added_tokens") is not { } list) return result;
            if (list.ValueKind != JsonValueKind.Array) throw Fail("added_tokens is not an array");
            int i = 0;
            foreach (var t in list.EnumerateArray())
            {
                string where = $"added_tokens[{i++}]";
                if (t.ValueKind != JsonValueKind.Object) throw Fail($"{where} is not an object");
                if (t.GetPropertyOrNull("id") is not { ValueKind: JsonValueKind.Number } idEl || !idEl.TryGetInt32(out int id) || id < 0 || id >= 1 << 24)
                    throw Fail($"{where} has no valid id");
                if (t.GetPropertyOrNull("content") is not { } c) throw Fail($"{where} has no content");
                result.Add(new AddedToken(String(c, $"{where}.content"), id, Flag(t, "special"), Flag(t, "lstrip"), Flag(t, "rstrip"),
                    Flag(t, "single_word"), Flag(t, "normalized")));
            }
            return result;
        }

        public void Normalizer(JsonElement? element, string where, List<Normalizer> output)
        {
            if (element is not { } e) return;
            switch (Type(e, where))
            {
                case "Sequence":
                    int i = 0;
                    foreach (var n in Array(e, "normalizers", where).EnumerateArray()) Normalizer(n, $"{where}.normalizers[{i++}]", output);
                    break;
                case "Prepend": output.Add(new PrependNormalizer(RequiredString(e, "prepend", where))); break;
                case "Replace":
                    var (literal, regex) = Pattern(e, where);
                    string content = RequiredString(e, "content", where);
                    output.Add(regex != null ? new RegexReplaceNormalizer(regex, content) : new ReplaceNormalizer(literal!, content));
                    break;
                case "NFC": output.Add(new UnicodeNormalizer(NormalizationForm.FormC)); break;
                case "NFD": output.Add(new UnicodeNormalizer(NormalizationForm.FormD)); break;
                case "NFKC": output.Add(new UnicodeNormalizer(NormalizationForm.FormKC)); break;
                case "NFKD": output.Add(new UnicodeNormalizer(NormalizationForm.FormKD)); break;
                case "Lowercase": output.Add(new LowercaseNormalizer()); break;
                case "Strip": output.Add(new StripNormalizer(Flag(e, "strip_left"), Flag(e, "strip_right"))); break;
                case "Precompiled" when e.GetPropertyOrNull("precompiled_charsmap") is null: break;
                case var other: throw Fail($"unsupported {where} type '{other}'");
            }
        }

        public void PreTokenizer(JsonElement? element, string where, List<PreTokenizer> output)
        {
            if (element is not { } e) return;
            switch (Type(e, where))
            {
                case "Sequence":
                    int i = 0;
                    foreach (var p in Array(e, "pretokenizers", where).EnumerateArray()) PreTokenizer(p, $"{where}.pretokenizers[{i++}]", output);
                    break;
                case "Metaspace":
                    output.Add(new MetaspacePreTokenizer(Replacement(e, where), Scheme(e, where), Flag(e, "split", true)));
                    break;
                case "ByteLevel":
                    output.Add(new ByteLevelPreTokenizer(Flag(e, "add_prefix_space", true), Flag(e, "use_regex", true)));
                    break;
                case "Split":
                    var (literal, regex) = Pattern(e, where);
                    SplitPattern pattern = regex != null ? SplitPattern.ForRegex(regex.ToString()) : new LiteralSplitPattern(literal!);
                    output.Add(new SplitPreTokenizer(pattern, Behavior(e, where), Flag(e, "invert")));
                    break;
                case "Digits": output.Add(new DigitsPreTokenizer(Flag(e, "individual_digits"))); break;
                case "WhitespaceSplit": output.Add(new WhitespaceSplitPreTokenizer()); break;
                case "Whitespace":
                    output.Add(new SplitPreTokenizer(new RegexSplitPattern(new Regex(@"\w+|[^\w\s]+", RegexOptions.CultureInvariant)),
                        SplitBehavior.Removed, invert: true));
                    break;
                case var other: throw Fail($"unsupported {where} type '{other}'");
            }
        }

        public void Decoder(JsonElement? element, string where, List<DecoderStep> output)
        {
            if (element is not { } e) return;
            switch (Type(e, where))
            {
                case "Sequence":
                    int i = 0;
                    foreach (var d in Array(e, "decoders", where).EnumerateArray()) Decoder(d, $"{where}.decoders[{i++}]", output);
                    break;
                case "Replace":
                    var (literal, regex) = Pattern(e, where);
                    if (regex != null) throw Fail($"unsupported {where}: Replace with a regular expression");
                    output.Add(new ReplaceDecoder(literal!, RequiredString(e, "content", where)));
                    break;
                case "ByteFallback": output.Add(new ByteFallbackDecoder()); break;
                case "Fuse": output.Add(new FuseDecoder()); break;
                case "Strip":
                    string content = RequiredString(e, "content", where);
                    if (content.Length != 1) throw Fail($"{where}.content must be one character, not '{content}'");
                    int start = Int(e, "start", where), stop = Int(e, "stop", where);
                    if (stop > 0 && output.Any(d => d is FuseDecoder))
                        throw Fail($"unsupported {where}: stripping the end of the fused text (stop = {stop})");
                    output.Add(new StripDecoder(content[0], start, stop));
                    break;
                case "ByteLevel": output.Add(new ByteLevelDecoder()); break;
                case "Metaspace": output.Add(new MetaspaceDecoder(Replacement(e, where), Scheme(e, where) != PrependScheme.Never)); break;
                case var other: throw Fail($"unsupported {where} type '{other}'");
            }
        }

        /// <summary>The special tokens a TemplateProcessing post-processor puts before and after a single sequence.</summary>
        public (string? Before, string? After) PostProcessorSpecials(JsonElement? element)
        {
            if (element is not { } e || e.ValueKind != JsonValueKind.Object) return (null, null);
            string type = e.GetPropertyOrNull("type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "";
            if (type == "Sequence" && e.GetPropertyOrNull("processors") is { ValueKind: JsonValueKind.Array } list)
            {
                foreach (var p in list.EnumerateArray())
                    if (PostProcessorSpecials(p) is var (b, a) && (b != null || a != null)) return (b, a);
                return (null, null);
            }
            if (type != "TemplateProcessing" || e.GetPropertyOrNull("single") is not { ValueKind: JsonValueKind.Array } single
                || single.GetArrayLength() == 0) return (null, null);
            static string? Special(JsonElement item) =>
                item.GetPropertyOrNull("SpecialToken") is { } s && s.GetPropertyOrNull("id") is { ValueKind: JsonValueKind.String } id ? id.GetString() : null;
            return (Special(single[0]), single.GetArrayLength() > 1 ? Special(single[single.GetArrayLength() - 1]) : null);
        }

        public string? TokenText(JsonElement e, string name) => e.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => e.GetString(),
            JsonValueKind.Object when e.GetPropertyOrNull("content") is { ValueKind: JsonValueKind.String } c => c.GetString(),
            _ => throw Fail($"{name} is neither a string nor an object with 'content'"),
        };

        public bool Bool(JsonElement e, string name) => e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw Fail($"{name} is not true or false"),
        };

        public string? ChatTemplate(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.Null) return null;
            if (e.ValueKind == JsonValueKind.String) return e.GetString();
            if (e.ValueKind == JsonValueKind.Array)
            {
                string? first = null;
                foreach (var t in e.EnumerateArray())
                {
                    string? name = t.GetPropertyOrNull("name") is { ValueKind: JsonValueKind.String } n ? n.GetString() : null;
                    string? text = t.GetPropertyOrNull("template") is { ValueKind: JsonValueKind.String } s ? s.GetString() : null;
                    if (text == null) continue;
                    if (name == "default") return text;
                    first ??= text;
                }
                return first;
            }
            throw Fail("chat_template is neither a string nor a list of named templates");
        }

        private string Type(JsonElement e, string where)
        {
            if (e.ValueKind != JsonValueKind.Object) throw Fail($"{where} is not an object");
            return e.GetPropertyOrNull("type") is { } t ? String(t, $"{where}.type") : throw Fail($"{where} has no type");
        }

        private JsonElement Array(JsonElement e, string name, string where) =>
            e.GetPropertyOrNull(name) is { ValueKind: JsonValueKind.Array } a ? a : throw Fail($"{where}.{name} is missing or not an array");

        private (string? Literal, Regex? Regex) Pattern(JsonElement e, string where)
        {
            if (e.GetPropertyOrNull("pattern") is not { ValueKind: JsonValueKind.Object } p) throw Fail($"{where}.pattern is missing");
            if (p.GetPropertyOrNull("String") is { } s) return (String(s, $"{where}.pattern.String"), null);
            if (p.GetPropertyOrNull("Regex") is { } r)
            {
                string source = String(r, $"{where}.pattern.Regex");
                try { return (null, new Regex(source, RegexOptions.CultureInvariant)); }
                catch (ArgumentException ex) { throw Fail($"{where}.pattern.Regex '{source}' is not a supported regular expression: {ex.Message}"); }
            }
            throw Fail($"{where}.pattern has neither String nor Regex");
        }

        private SplitBehavior Behavior(JsonElement e, string where)
        {
            string b = RequiredString(e, "behavior", where);
            return Enum.TryParse<SplitBehavior>(b, ignoreCase: true, out var behavior) && !int.TryParse(b, out _)
                ? behavior : throw Fail($"unsupported {where}.behavior '{b}'");
        }

        private char Replacement(JsonElement e, string where)
        {
            string r = e.GetPropertyOrNull("replacement") is { } v ? String(v, $"{where}.replacement")
                : e.GetPropertyOrNull("str_rep") is { } s ? String(s, $"{where}.str_rep") : "\u2581";
            return r.Length == 1 ? r[0] : throw Fail($"{where}.replacement must be one character, not '{r}'");
        }

        private PrependScheme Scheme(JsonElement e, string where)
        {
            if (e.GetPropertyOrNull("prepend_scheme") is { } s)
                return String(s, $"{where}.prepend_scheme") switch
                {
                    "always" => PrependScheme.Always,
                    "first" => PrependScheme.First,
                    "never" => PrependScheme.Never,
                    var other => throw Fail($"unsupported {where}.prepend_scheme '{other}'"),
                };
            return Flag(e, "add_prefix_space", true) ? PrependScheme.Always : PrependScheme.Never;
        }

        private string RequiredString(JsonElement e, string name, string where) =>
            e.GetPropertyOrNull(name) is { } v ? String(v, $"{where}.{name}") : throw Fail($"{where}.{name} is missing");

        private int Int(JsonElement e, string name, string where) =>
            e.GetPropertyOrNull(name) is not { } v ? 0
            : v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i >= 0 ? i
            : throw Fail($"{where}.{name} is not a non-negative integer");

        private string String(JsonElement e, string where) =>
            e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Fail($"{where} is not a string");

        private bool Flag(JsonElement e, string name, bool defaultValue = false) =>
            e.GetPropertyOrNull(name) is { } v ? Bool(v, name) : defaultValue;
    }
}
