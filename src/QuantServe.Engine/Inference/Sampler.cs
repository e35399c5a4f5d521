using System.Numerics.Tensors;

namespace QuantServe.Engine.Inference;

/// <summary>A token and its log-probability.</summary>
public readonly record struct TokenLogprob(int Token, float Logprob);

/// <summary>
/// Chooses the next token from a logits row. The order of operations is fixed and documented because it changes results:
/// <list type="number">
/// <item>logit bias: <c>l[id] += bias</c>;</item>
/// <item>log-probabilities, when requested, are taken HERE: the log-softmax of the model's logits after logit bias and before
/// penalties, temperature and truncation — the model's own (biased) distribution, which is what OpenAI's logprobs describe
/// and what stays comparable across sampling settings;</item>
/// <item>penalties over the last <see cref="SamplingOptions.PenaltyWindow"/> tokens of the history: repetition
/// (<c>l/r</c> if l &gt; 0 else <c>l·r</c>, once per distinct token), then <c>l −= count·frequency + presence</c>;</item>
/// <item>temperature 0 (or top-k 1): argmax, lowest id on ties; otherwise <c>l/T</c>, top-k, softmax, top-p, min-p,
/// and a draw from the renormalised remainder with the seeded <see cref="Xoshiro256"/>.</item>
/// </list>
/// One sampler serves one sequence; buffers are allocated once, so sampling allocates nothing.
/// </summary>
public sealed class Sampler
{
    private readonly int _vocab;
    private readonly int[] _biasIds;
    private readonly float[] _biasValues;
    private readonly int[] _counts;
    private readonly float[] _probs;   // candidate probabilities, sorted descending when truncating
    private readonly int[] _ids;       // candidate ids, parallel to _probs
    private readonly float[] _biased;  // the biased logits, kept for log-probabilities
    private readonly TokenLogprob[] _top;
    private Xoshiro256 _rng;
    private int _topCount;

    /// <summary>A sampler for a vocabulary of <paramref name="vocabSize"/> tokens.</summary>
    public Sampler(int vocabSize, SamplingOptions options)
    {
        options.Validate(vocabSize);
        _vocab = vocabSize;
        Options = options;
        var bias = options.LogitBias?.OrderBy(kv => kv.Key).ToArray() ?? [];
        _biasIds = bias.Select(kv => kv.Key).ToArray();
        _biasValues = bias.Select(kv => kv.Value).ToArray();
        _counts = new int[vocabSize];
        _probs = new float[vocabSize];
        _ids = new int[vocabSize];
        _biased = WantsLogprobs ? new float[vocabSize] : [];
        _top = new TokenLogprob[options.TopLogprobs];
        _rng = new Xoshiro256(options.Seed ?? (ulong)Random.Shared.NextInt64());
    }

    /// <summary>The options this sampler applies.</summary>
    public SamplingOptions Options { get; }

    private bool WantsLogprobs => Options.Logprobs || Options.TopLogprobs > 0;

    /// <summary>Log-probability of the last sampled token (NaN unless log-probabilities were requested).</summary>
    public float LastLogprob { get; private set; } = float.NaN;

    /// <summary>The most likely alternatives at the last step, most likely first (empty unless requested).</summary>
    public ReadOnlySpan<TokenLogprob> LastTopLogprobs => _top.AsSpan(0, _topCount);

    /// <summary>
    /// Picks the next token. <paramref name="logits"/> (one vocab-wide row) is modified in place;
    /// <paramref name="history"/> holds the tokens so far (prompt and generated) for the penalties.
    /// </summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (logits.Length != _vocab) throw new ArgumentException($"logits row has {logits.Length} entries, vocabulary is {_vocab}");
        var o = Options;
        for (int i = 0; i < _biasIds.Length; i++) logits[_biasIds[i]] += _biasValues[i];

        float logNorm = 0;
        if (WantsLogprobs)
        {
            logits.CopyTo(_biased);
            logNorm = LogSumExp(_biased);
            FillTopLogprobs(logNorm);
        }

        ApplyPenalties(logits, history);

        int token = o.Temperature == 0 || o.TopK == 1 ? ArgMax(logits) : Draw(logits);
        LastLogprob = WantsLogprobs ? _biased[token] - logNorm : float.NaN;
        return token;
    }

    /// <summary>Index of the largest value, the lowest index on ties (NaN never wins).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return 0;
        // The vectorised search returns the first maximum; it reports a NaN if there is one, and then the scalar loop decides.
        int index = TensorPrimitives.IndexOfMax(values);
        if (!float.IsNaN(values[index])) return index;
        int best = 0;
        float max = float.NegativeInfinity;
        for (int i = 0; i < values.Length; i++)
            if (values[i] > max) { max = values[i]; best = i; }
        return best;
    }

    /// <summary><c>log Σ_i e^(x_i)</c>, computed as <c>m + log Σ_i e^(x_i − m)</c> with m the maximum.</summary>
    public static float LogSumExp(ReadOnlySpan<float> x)
    {
        float max = TensorPrimitives.Max(x);
        if (float.IsNegativeInfinity(max)) return max;
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += Math.Exp(x[i] - max);
        return max + (float)Math.Log(sum);
    }

    private void FillTopLogprobs(float logNorm)
    {
        int n = _top.Length;
        _topCount = 0;
        if (n == 0) return;
        // Insertion into a small sorted array: O(vocab · n) with n ≤ 20 in practice.
        for (int id = 0; id < _vocab; id++)
        {
            float v = _biased[id];
            if (_topCount == n && !(v > _top[n - 1].Logprob)) continue;
            int at = Math.Min(_topCount, n - 1);
            while (at > 0 && v > _top[at - 1].Logprob) { _top[at] = _top[at - 1]; at--; }
            _top[at] = new TokenLogprob(id, v);
            if (_topCount < n) _topCount++;
        }
        for (int i = 0; i < _topCount; i++) _top[i] = _top[i] with { Logprob = _top[i].Logprob - logNorm };
    }

    private void ApplyPenalties(Span<float> logits, ReadOnlySpan<int> history)
    {
        var o = Options;
        if (o.RepetitionPenalty == 1f && o.PresencePenalty == 0f && o.FrequencyPenalty == 0f) return;
        var window = o.PenaltyWindow > 0 && history.Length > o.PenaltyWindow ? history[^o.PenaltyWindow..] : history;
        foreach (int t in window)
            if ((uint)t < (uint)_vocab) _counts[t]++;
        foreach (int t in window)
        {
            if ((uint)t >= (uint)_vocab || _counts[t] == 0) continue;
            float l = logits[t];
            if (o.RepetitionPenalty != 1f) l = l > 0 ? l / o.RepetitionPenalty : l * o.RepetitionPenalty;
            l -= _counts[t] * o.FrequencyPenalty + o.PresencePenalty;
            logits[t] = l;
            _counts[t] = 0; // each distinct token once; also leaves the counts zeroed for the next call
        }
    }

    private int Draw(Span<float> logits)
    {
        var o = Options;
        TensorPrimitives.Divide(logits, o.Temperature, logits);
        int n;
        bool sorted = false;
        if (o.TopK > 0 && o.TopK < _vocab)
        {
            n = SelectTopK(logits, o.TopK);
            sorted = true;
        }
        else
        {
            n = _vocab;
            logits.CopyTo(_probs);
            for (int i = 0; i < n; i++) _ids[i] = i;
        }
        // Softmax over the candidates (in _probs, ids in _ids).
        var p = _probs.AsSpan(0, n);
        Kernels.Cpu.Softmax.InPlace(p);

        if (o.TopP < 1f)
        {
            if (!sorted)
            {
                // Tokens below (1 − p)/(n − 1) can never be inside the nucleus: drop them before sorting.
                float floor = (1f - o.TopP) / Math.Max(1, n - 1);
                int kept = 0;
                for (int i = 0; i < n; i++)
                    if (p[i] >= floor) { _probs[kept] = p[i]; _ids[kept] = _ids[i]; kept++; }
                n = kept;
                SortDescending(n);
                sorted = true;
                p = _probs.AsSpan(0, n);
            }
            double cumulative = 0;
            int cut = n;
            for (int i = 0; i < n; i++)
            {
                cumulative += p[i];
                if (cumulative >= o.TopP) { cut = i + 1; break; }
            }
            n = cut;
            p = p[..n];
        }
        if (o.MinP > 0f)
        {
            float threshold = o.MinP * TensorPrimitives.Max(p);
            int kept = 0;
            for (int i = 0; i < n; i++)
                if (p[i] >= threshold) { _probs[kept] = p[i]; _ids[kept] = _ids[i]; kept++; }
            n = kept;
            p = _probs.AsSpan(0, n);
        }

        double total = 0;
        for (int i = 0; i < n; i++) total += p[i];
        double r = _rng.NextDouble() * total;
        double acc = 0;
        for (int i = 0; i < n; i++)
        {
            acc += p[i];
            if (r < acc) return _ids[i];
        }
        return _ids[n - 1]; // rounding left r at the very top
    }

    /// <summary>Moves the k largest logits (ties: lower id first) into _probs/_ids, sorted descending; returns k.</summary>
    private int SelectTopK(ReadOnlySpan<float> logits, int k)
    {
        // A bounded insertion list is fastest for small k; larger k falls back to a full sort.
        if (k <= 64)
        {
            int count = 0;
            for (int id = 0; id < logits.Length; id++)
            {
                float v = logits[id];
                if (count == k && !(v > _probs[k - 1])) continue;
                int at = Math.Min(count, k - 1);
                while (at > 0 && v > _probs[at - 1]) { _probs[at] = _probs[at - 1]; _ids[at] = _ids[at - 1]; at--; }
                _probs[at] = v;
                _ids[at] = id;
                if (count < k) count++;
            }
            return count;
        }
        logits.CopyTo(_probs);
        for (int i = 0; i < _vocab; i++) _ids[i] = i;
        SortDescending(_vocab);
        return k;
    }

    private void SortDescending(int n)
    {
        // Sort by negated value so Array.Sort's ascending order is descending probability; ties broken by id.
        for (int i = 0; i < n; i++) _probs[i] = -_probs[i];
        Array.Sort(_probs, _ids, 0, n);
        for (int i = 0; i < n; i++) _probs[i] = -_probs[i];
        for (int i = 1; i < n; i++)
        {
            // Array.Sort is not stable: order equal values by id so results never depend on the sort's internals.
            int j = i;
            while (j > 0 && _probs[j] == _probs[j - 1] && _ids[j] < _ids[j - 1])
            {
                (_ids[j], _ids[j - 1]) = (_ids[j - 1], _ids[j]);
                j--;
            }
        }
    }
}
