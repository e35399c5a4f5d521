using QuantServe.Engine.Models;

namespace QuantServe.Engine.Evaluation;

/// <summary>
/// The token windows of llama.cpp's <c>llama-perplexity</c>: the whole text is tokenized once (BOS prepended when the
/// vocabulary adds it), cut into <c>floor(tokens / n_ctx)</c> consecutive non-overlapping windows of n_ctx tokens (a
/// shorter tail is dropped), and each window's first token is replaced by BOS. Within a window the logits at positions
/// <c>first = n_ctx/2</c> .. n_ctx−2 are scored against the next token, so each window scores n_ctx − 1 − first tokens.
/// </summary>
public sealed class EvaluationWindows
{
    private readonly int[] _tokens;
    private readonly int _bos;

    private EvaluationWindows(int[] tokens, int contextLength, int chunks, int bos)
    {
        _tokens = tokens;
        ContextLength = contextLength;
        Chunks = chunks;
        _bos = bos;
    }

    /// <summary>Tokens per window (n_ctx).</summary>
    public int ContextLength { get; }

    /// <summary>Windows evaluated.</summary>
    public int Chunks { get; }

    /// <summary>Tokens of the whole text (BOS included when added).</summary>
    public int TextTokens => _tokens.Length;

    /// <summary>First scored logits position of a window: n_ctx/2 (integer division).</summary>
    public int First => ContextLength / 2;

    /// <summary>Tokens scored per window: n_ctx − 1 − n_ctx/2.</summary>
    public int ScoredPerWindow => ContextLength - 1 - First;

    /// <summary>Tokens scored over all windows.</summary>
    public int TokensScored => Chunks * ScoredPerWindow;

    /// <summary>
    /// Tokenizes <paramref name="text"/> with <paramref name="model"/>'s tokenizer (BOS as the vocabulary asks, special-token
    /// texts not parsed, as llama-perplexity does) and lays out windows of <paramref name="contextLength"/> tokens;
    /// <paramref name="maxChunks"/> &gt; 0 caps the number of windows (llama.cpp's <c>--chunks</c>).
    /// </summary>
    /// <exception cref="ArgumentException">The context is below 4 or above the model's, or the text has fewer than 2·n_ctx tokens (llama.cpp's requirement).</exception>
    public static EvaluationWindows Create(LoadedModel model, string text, int contextLength, int maxChunks = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(text);
        var tok = model.Tokenizer;
        int[] tokens = tok.Encode(text, addBos: tok.AddBosByDefault);
        return Create(model, tokens, contextLength, maxChunks, tok.AddBosByDefault ? tok.BosId : -1);
    }

    /// <summary>Lays out windows over already tokenized text; <paramref name="bos"/> ≥ 0 replaces each window's first token.</summary>
    public static EvaluationWindows Create(LoadedModel model, int[] tokens, int contextLength, int maxChunks, int bos)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        var c = model.Config;
        if (contextLength < 4)
            throw new ArgumentException($"context of {contextLength} tokens is too small: at least 4 are needed to score the second half of a window");
        if (contextLength > c.ContextLength)
            throw new ArgumentException($"context of {contextLength} tokens exceeds the model's context length of {c.ContextLength}");
        if (maxChunks < 0) throw new ArgumentException($"chunk limit must be 0 (all) or positive, got {maxChunks}");
        if (tokens.Length < 2 * contextLength)
            throw new ArgumentException($"the text has {tokens.Length} tokens; at least 2·ctx = {2 * contextLength} are needed (as llama-perplexity requires)");
        foreach (int t in tokens)
            if ((uint)t >= (uint)c.VocabSize)
                throw new ArgumentException($"token id {t} is outside the model's vocabulary [0, {c.VocabSize})");
        if (bos >= c.VocabSize) throw new ArgumentException($"BOS id {bos} is outside the model's vocabulary [0, {c.VocabSize})");
        int chunks = tokens.Length / contextLength;
        if (maxChunks > 0) chunks = Math.Min(chunks, maxChunks);
        return new EvaluationWindows(tokens, contextLength, chunks, bos);
    }

    /// <summary>Copies window <paramref name="chunk"/> into <paramref name="window"/> (n_ctx ids), its first token replaced by BOS when the vocabulary adds one.</summary>
    public void CopyWindow(int chunk, Span<int> window)
    {
        if ((uint)chunk >= (uint)Chunks) throw new ArgumentOutOfRangeException(nameof(chunk), chunk, $"there are {Chunks} windows");
        _tokens.AsSpan(chunk * ContextLength, ContextLength).CopyTo(window);
        if (_bos >= 0) window[0] = _bos;
    }
}
