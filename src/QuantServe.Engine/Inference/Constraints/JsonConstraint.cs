using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Inference.Constraints;

/// <summary>
/// Restricts generation to one JSON object (OpenAI <c>response_format: {"type": "json_object"}</c>). Each step the
/// caller asks for the allowed-token mask (<see cref="ComputeMask"/>, or <see cref="ApplyToLogits"/> which sets
/// disallowed logits to negative infinity), samples, and reports the token with <see cref="Accept"/>.
/// A token is allowed when the document so far plus the token's bytes is still a completable JSON prefix
/// (<see cref="JsonState"/>); stop tokens (EOS and any given) are allowed only once the object is complete, and then
/// nothing else is. With a token budget the mask also keeps only tokens after which the object can still be
/// closed in the remaining tokens (<see cref="JsonState.BytesToComplete"/>), so generation that stops at
/// <c>max_tokens</c> still yields valid JSON when the vocabulary has byte tokens (Llama/SentencePiece byte fallback).
/// The mask is computed by walking <see cref="TokenByteTrie"/> with copies of the small state struct: no per-step
/// allocation, and a rejected byte prunes every token sharing the prefix.
/// </summary>
public sealed class JsonConstraint : ITokenConstraint
{
    private readonly Tokenizer _tokenizer;
    private readonly TokenByteTrie _trie;
    private readonly bool[] _isStop;
    private readonly int[] _stopIds;
    private readonly JsonState[] _stack;
    private readonly bool[] _mask;
    private JsonState _state;
    private int _previous;

    /// <summary>Creates the constraint for a generation whose prompt ended with <paramref name="previousToken"/>
    /// (-1 when none). The output must start with <c>{</c> (no leading whitespace). <paramref name="maxWhitespaceRun"/>
    /// bounds whitespace between JSON tokens so a model cannot emit spaces forever (the default allows a newline plus
    /// indentation); <paramref name="maxDepth"/> bounds nesting.</summary>
    public JsonConstraint(Tokenizer tokenizer, IEnumerable<int>? stopTokenIds = null, int previousToken = -1,
        int maxWhitespaceRun = 20, int maxDepth = 32)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        _trie = TokenByteTrie.For(tokenizer);
        _isStop = new bool[tokenizer.VocabSize];
        var stops = new List<int>();
        foreach (int id in (stopTokenIds ?? []).Append(tokenizer.EosId))
            if ((uint)id < (uint)_isStop.Length && !_isStop[id]) { _isStop[id] = true; stops.Add(id); }
        _stopIds = stops.ToArray();
        _stack = new JsonState[_trie.MaxTokenBytes + 1];
        _mask = new bool[tokenizer.VocabSize];
        _state = JsonState.Start(maxWhitespaceRun, maxDepth, objectOnly: true, leadingWhitespace: false);
        _previous = previousToken;
    }

    /// <summary>A factory for <see cref="GenerationOptions.Constraint"/>: one JSON object per generation (default limits).</summary>
    public static ITokenConstraint Create(ConstraintContext context) =>
        new JsonConstraint(context.Tokenizer, context.StopTokenIds, context.PreviousToken);

    /// <summary>The recognizer state after the accepted tokens.</summary>
    public JsonState State => _state;

    /// <summary>Whether the object is complete (only stop tokens are allowed now; generation should end).</summary>
    public bool IsComplete => _state.IsComplete;

    /// <summary>Whether a stop token was accepted after completion.</summary>
    public bool IsFinished { get; private set; }

    /// <summary>The mask filled by the last <see cref="ApplyToLogits"/> call (index = token id).</summary>
    public ReadOnlySpan<bool> LastMask => _mask;

    /// <summary>
    /// Writes <c>allowed[t]</c> for every token id and returns how many are allowed. <paramref name="remainingTokens"/>
    /// (this token included, a stop token after completion not counted) enables budget-aware closing; when the budget is
    /// too small to close the object at all it is ignored. 0 allowed means the vocabulary cannot continue the object
    /// (or a stop token was already accepted).
    /// </summary>
    public int ComputeMask(Span<bool> allowed, int remainingTokens = int.MaxValue)
    {
        int n = ComputeMaskCore(allowed, remainingTokens);
        // A budget too small to close the object is dropped: the output is then cut by the token limit instead.
        return n == 0 && remainingTokens != int.MaxValue && !_state.IsComplete ? ComputeMaskCore(allowed, int.MaxValue) : n;
    }

    private int ComputeMaskCore(Span<bool> allowed, int remainingTokens)
    {
        if (allowed.Length < _isStop.Length) throw new ArgumentException($"mask needs {_isStop.Length} entries, got {allowed.Length}", nameof(allowed));
        allowed.Clear();
        if (IsFinished) return 0;
        if (_state.IsComplete)
        {
            foreach (int id in _stopIds) allowed[id] = true;
            return _stopIds.Length;
        }
        int budgetAfter = remainingTokens == int.MaxValue ? int.MaxValue : remainingTokens - 1;
        if (budgetAfter < 0) return 0;
        if (_previous < 0 || _previous == _tokenizer.BosId) return ScanFromStart(allowed, budgetAfter);
        if (_state.InPlainString) return MaskInString(allowed, budgetAfter);

        var trie = _trie;
        var label = trie.Label;
        var depth = trie.NodeDepth;
        var end = trie.SubtreeEnd;
        var count = trie.TokenCount;
        var start = trie.TokenStart;
        var tokens = trie.Tokens;
        var stack = _stack;
        stack[0] = _state;
        int allowedCount = 0, n = label.Length;
        for (int i = 0; i < n;)
        {
            var s = stack[depth[i] - 1];
            if (!s.TryAccept(label[i])) { i = end[i]; continue; }
            stack[depth[i]] = s;
            int c = count[i];
            if (c != 0 && (budgetAfter == int.MaxValue || s.BytesToComplete <= budgetAfter))
            {
                int t0 = start[i];
                for (int k = 0; k < c; k++)
                {
                    int id = tokens[t0 + k];
                    if (_isStop[id]) continue;
                    allowed[id] = true;
                    allowedCount++;
                }
            }
            i++;
        }
        return allowedCount;
    }

    // Inside a string almost every token is ordinary content that leaves the state as it is: copy the precomputed
    // set and run the automaton only on the few tokens with quotes, backslashes, control or partial UTF-8 bytes.
    private int MaskInString(Span<bool> allowed, int budgetAfter)
    {
        var trie = _trie;
        int allowedCount = 0;
        if (budgetAfter == int.MaxValue || _state.BytesToComplete <= budgetAfter)
        {
            trie.PlainString.CopyTo(allowed);
            allowedCount = trie.PlainStringCount;
            foreach (int id in _stopIds)
                if (allowed[id]) { allowed[id] = false; allowedCount--; }
        }
        foreach (int id in trie.OtherTokens)
        {
            if (_isStop[id]) continue;
            var s = _state;
            if (!s.TryAccept(trie.Bytes[id])) continue;
            if (budgetAfter != int.MaxValue && s.BytesToComplete > budgetAfter) continue;
            allowed[id] = true;
            allowedCount++;
        }
        return allowedCount;
    }

    // Right after BOS (or with no prompt) tokens decode differently (SentencePiece drops the leading space): test
    // each token's own bytes. This happens at most once per generation.
    private int ScanFromStart(Span<bool> allowed, int budgetAfter)
    {
        int allowedCount = 0;
        for (int id = 0; id < _isStop.Length; id++)
        {
            if (_isStop[id]) continue;
            var bytes = _tokenizer.TokenBytes(id, _previous);
            if (bytes.Length == 0) continue;
            var s = _state;
            if (!s.TryAccept(bytes)) continue;
            if (budgetAfter != int.MaxValue && s.BytesToComplete > budgetAfter) continue;
            allowed[id] = true;
            allowedCount++;
        }
        return allowedCount;
    }

    /// <summary>Sets <c>logits[t] = -inf</c> for every disallowed token; returns how many tokens remain allowed.</summary>
    public int ApplyToLogits(Span<float> logits, int remainingTokens = int.MaxValue)
    {
        if (logits.Length < _mask.Length) throw new ArgumentException($"logits need {_mask.Length} entries, got {logits.Length}", nameof(logits));
        int n = ComputeMask(_mask, remainingTokens);
        for (int i = 0; i < _mask.Length; i++)
            if (!_mask[i]) logits[i] = float.NegativeInfinity;
        return n;
    }

    /// <summary>Whether <paramref name="token"/> may come next (ignoring any token budget).</summary>
    public bool IsAllowed(int token)
    {
        if ((uint)token >= (uint)_isStop.Length || IsFinished) return false;
        if (_state.IsComplete) return _isStop[token];
        if (_isStop[token]) return false;
        var bytes = _tokenizer.TokenBytes(token, _previous);
        if (bytes.Length == 0) return false;
        var s = _state;
        return s.TryAccept(bytes);
    }

    /// <summary>Advances past the sampled <paramref name="token"/>; throws <see cref="InvalidOperationException"/>
    /// when the mask would not have allowed it.</summary>
    public void Accept(int token)
    {
        if (!IsAllowed(token))
            throw new InvalidOperationException($"token {token} ('{_tokenizer.TokenText(token)}') is not allowed by the JSON constraint here");
        if (_state.IsComplete) IsFinished = true;
        else _state.TryAccept(_tokenizer.TokenBytes(token, _previous));
        _previous = token;
    }
}
