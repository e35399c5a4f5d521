using System.Text;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization.Text;

namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// Byte-level BPE (GPT-2, Llama-3, Qwen2): words from the regex pre-tokenizer are taken as UTF-8 bytes, each byte
/// starts as the piece of its <see cref="ByteLevelAlphabet"/> character, and pieces merge by rank. Every byte has a
/// piece, so any text round-trips exactly. Added tokens (chat markers) are split out before the regex runs.
/// </summary>
public sealed class ByteLevelBpeTokenizer : BpeTokenizer
{
    private readonly int[] _byteIds = new int[256];
    private readonly bool _ignoreMerges;
    [ThreadStatic] private static int[]? t_symbols;
    [ThreadStatic] private static byte[]? t_bytes;
    [ThreadStatic] private static char[]? t_chars;

    /// <summary>Builds the tokenizer (see <see cref="BpeTokenizer"/> for the errors it reports). The pipeline's
    /// pre-tokenizers must not include the byte-to-character mapping: this class applies it to each word.</summary>
    public ByteLevelBpeTokenizer(BpeDefinition definition) : base(definition)
    {
        for (int b = 0; b < 256; b++)
            _byteIds[b] = Vocab.TryGetValue(ByteLevelAlphabet.ByteToChar((byte)b).ToString(), out int id) ? id : -1;
        _ignoreMerges = definition.IgnoreMerges;
    }

    /// <summary>
    /// The tokenizer of a GGUF file with <c>tokenizer.ggml.model = gpt2</c>.
    /// </summary>
    /// <param name="file">The GGUF file (named in errors).</param>
    /// <param name="tokens"><c>tokenizer.ggml.tokens</c>: pieces in the byte-level alphabet (added tokens in plain text).</param>
    /// <param name="types"><c>tokenizer.ggml.token_type</c>, or null: <see cref="TokenType.Control"/> tokens are special
    /// (matched only when parsing special tokens, decoded to nothing); <see cref="TokenType.UserDefined"/> ones are
    /// always matched verbatim.</param>
    /// <param name="merges"><c>tokenizer.ggml.merges</c>: "left right" strings in rank order.</param>
    /// <param name="pre"><c>tokenizer.ggml.pre</c>: <c>llama-bpe</c>/<c>llama3</c>/<c>llama-v3</c>/<c>falcon3</c>/<c>pixtral</c>
    /// (Llama-3 pattern, whole-word pieces skip merging), <c>qwen2</c>/<c>deepseek-r1-qwen</c>/<c>megrez</c> (Qwen2 pattern, NFC),
    /// <c>gpt2</c>/<c>gpt-2</c>/<c>phi-2</c>/<c>roberta-bpe</c> (GPT-2 pattern), <c>default</c> or null (llama.cpp's default
    /// patterns). Anything else is a <see cref="ModelLoadException"/>.</param>
    /// <param name="bosId"><c>tokenizer.ggml.bos_token_id</c>, or -1.</param>
    /// <param name="eosId"><c>tokenizer.ggml.eos_token_id</c>, or -1.</param>
    /// <param name="addBos"><c>tokenizer.ggml.add_bos_token</c>.</param>
    public static ByteLevelBpeTokenizer FromGguf(string file, IReadOnlyList<string> tokens, IReadOnlyList<TokenType>? types,
        IReadOnlyList<string> merges, string? pre, int bosId, int eosId, bool addBos)
    {
        if (types != null && types.Count != tokens.Count)
            throw new ModelLoadException(file, $"tokenizer.ggml.token_type has {types.Count} entries for {tokens.Count} tokens");
        var pairs = new (string, string)[merges.Count];
        for (int i = 0; i < merges.Count; i++)
        {
            string m = merges[i];
            int space = m.Length > 1 ? m.IndexOf(' ', 1) : -1;
            if (space < 0 || space == m.Length - 1)
                throw new ModelLoadException(file, $"tokenizer.ggml.merges[{i}] '{m}' is not two pieces separated by a space");
            pairs[i] = (m[..space], m[(space + 1)..]);
        }
        var added = new List<AddedToken>();
        if (types != null)
            for (int id = 0; id < tokens.Count; id++)
            {
                if (types[id] == TokenType.Control) added.Add(new AddedToken(tokens[id], id, Special: true));
                else if (types[id] == TokenType.UserDefined) added.Add(new AddedToken(tokens[id], id, Special: false));
            }
        var (pipeline, ignoreMerges) = GgufPipeline(file, pre);
        return new ByteLevelBpeTokenizer(new BpeDefinition
        {
            Source = file,
            Pieces = tokens,
            Merges = pairs,
            AddedTokens = added,
            Pipeline = pipeline,
            Decoder = [new ByteLevelDecoder()],
            BosId = bosId,
            EosId = eosId,
            AddBos = addBos,
            IgnoreMerges = ignoreMerges,
        });
    }

    private static (TextPipeline, bool IgnoreMerges) GgufPipeline(string file, string? pre)
    {
        static PreTokenizer Split(SplitPattern p) => new SplitPreTokenizer(p, SplitBehavior.Isolated, invert: false);
        switch (pre)
        {
            case "llama-bpe" or "llama3" or "llama-v3" or "falcon3" or "pixtral":
                return (new TextPipeline([], [Split(Gpt2StylePattern.Llama3Matcher)]), true);
            case "qwen2" or "deepseek-r1-qwen" or "megrez":
                return (new TextPipeline([new UnicodeNormalizer(NormalizationForm.FormC)], [Split(Gpt2StylePattern.Qwen2Matcher)]), false);
            case "gpt2" or "gpt-2" or "phi-2" or "roberta-bpe":
                return (new TextPipeline([], [Split(Gpt2StylePattern.Gpt2Matcher)]), false);
            case null or "" or "default":
                // llama.cpp's fallback for byte-level vocabularies without a known pre-tokenizer: four successive splits.
                return (new TextPipeline([], [
                    Split(SplitPattern.ForRegex(@"[\p{P}\$\+<=>\^~\|]+")),
                    Split(SplitPattern.ForRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)")),
                    Split(SplitPattern.ForRegex(@"\p{N}+")),
                    Split(SplitPattern.ForRegex("[0-9][0-9][0-9]")),
                ]), false);
            default:
                throw new ModelLoadException(file, $"unsupported tokenizer.ggml.pre '{pre}' (supported: llama-bpe, llama3, qwen2, gpt2, default)");
        }
    }

    private protected override void EncodeWord(ReadOnlySpan<char> word, List<int> output)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
        if (t_bytes == null || t_bytes.Length < maxBytes) t_bytes = new byte[Math.Max(maxBytes, 256)];
        int byteCount = Encoding.UTF8.GetBytes(word, t_bytes);
        var bytes = t_bytes.AsSpan(0, byteCount);
        if (_ignoreMerges)
        {
            if (t_chars == null || t_chars.Length < byteCount) t_chars = new char[Math.Max(byteCount, 256)];
            for (int k = 0; k < byteCount; k++) t_chars[k] = ByteLevelAlphabet.ByteToChar(bytes[k]);
            if (VocabLookup.TryGetValue(t_chars.AsSpan(0, byteCount), out int whole))
            {
                output.Add(whole);
                return;
            }
        }
        if (t_symbols == null || t_symbols.Length < byteCount) t_symbols = new int[Math.Max(byteCount, 256)];
        var symbols = t_symbols;
        int n = 0;
        bool unkPending = false;
        foreach (byte b in bytes)
        {
            int id = _byteIds[b];
            if (id >= 0)
            {
                if (unkPending) { symbols[n++] = UnkId; unkPending = false; }
                symbols[n++] = id;
            }
            else if (UnkId >= 0 && !(unkPending && Definition.FuseUnk))
            {
                if (unkPending) symbols[n++] = UnkId;
                unkPending = true;
            }
        }
        if (unkPending) symbols[n++] = UnkId;
        int merged = Merges.Apply(symbols.AsSpan(0, n));
        for (int k = 0; k < merged; k++) output.Add(symbols[k]);
    }
}
