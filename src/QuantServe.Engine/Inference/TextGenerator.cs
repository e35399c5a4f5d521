using System.Runtime.CompilerServices;
using System.Text;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Inference;

/// <summary>
/// The engine's high-level API: streams generated tokens and text for a prompt, and scores token sequences.
/// A prompt is processed in one batched forward pass (in pieces of the model's maximum batch), then tokens are decoded one
/// at a time. Several generations may run concurrently on one instance: each has its own cache and sampler, and the
/// steps they need at the same moment run as ONE batched forward pass on the shared <see cref="LlamaModel"/>
/// (continuous batching: a new prompt joins the running sequences' next decode step).
/// </summary>
public sealed class TextGenerator
{
    private readonly ForwardBatcher _batcher;
    private float[]? _scoreLogits;

    /// <summary>Wraps <paramref name="model"/>; <paramref name="maxBatchTokens"/> bounds one forward piece.</summary>
    public TextGenerator(LoadedModel model, int maxBatchTokens = 512, WorkerPool? pool = null)
        : this(new LlamaModel(model, maxBatchTokens, pool)) { }

    /// <summary>Wraps an existing forward-pass instance (which this generator then uses exclusively).</summary>
    public TextGenerator(LlamaModel model)
    {
        Model = model;
        _batcher = new ForwardBatcher(model);
    }

    /// <summary>Batching statistics: forward passes run for generation, the sequence steps they served, and the widest batch.</summary>
    public (long ForwardPasses, long SequenceSteps, int WidestBatch) BatchStatistics
    {
        get
        {
            var (passes, sequences) = _batcher.Counts;
            return (passes, sequences, _batcher.WidestBatch);
        }
    }

    internal ForwardBatcher Batcher => _batcher;

    /// <summary>The forward pass.</summary>
    public LlamaModel Model { get; }

    private Tokenizer Tokenizer => Model.Source.Tokenizer;

    /// <summary>Encodes <paramref name="prompt"/> as <see cref="Generate(IReadOnlyList{int},GenerationOptions,CancellationToken)"/> would.</summary>
    public int[] EncodePrompt(string prompt, GenerationOptions options) =>
        Tokenizer.Encode(prompt, options.AddBos ?? Tokenizer.AddBosByDefault, options.ParseSpecialTokens);

    /// <summary>Generates a continuation of the text <paramref name="prompt"/>.</summary>
    public IEnumerable<GeneratedToken> Generate(string prompt, GenerationOptions options, CancellationToken cancellation = default) =>
        Generate(EncodePrompt(prompt, options), options, cancellation);

    /// <summary>
    /// Generates a continuation of <paramref name="prompt"/> (token ids), yielding each token as it is sampled. The last item
    /// carries <see cref="GeneratedToken.Finish"/>. Cancellation stops between tokens by throwing <see cref="OperationCanceledException"/>.
    /// </summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellation = default)
    {
        var c = Model.Config;
        if (prompt.Count == 0) throw new ArgumentException("the prompt has no tokens");
        if (options.MaxTokens < 0) throw new ArgumentException($"max tokens must be ≥ 0, got {options.MaxTokens}");
        if (prompt.Count >= c.ContextLength)
            throw new ArgumentException($"the prompt has {prompt.Count} tokens but the model's context holds {c.ContextLength}");
        foreach (int t in prompt)
            if ((uint)t >= (uint)c.VocabSize) throw new ArgumentException($"prompt token id {t} is outside the vocabulary [0, {c.VocabSize})");
        var sampler = new Sampler(c.VocabSize, options.Sampling);
        return Run(prompt, options, sampler, cancellation);
    }

    /// <summary>Async streaming: the same as <see cref="Generate(IReadOnlyList{int},GenerationOptions,CancellationToken)"/>, each step on the thread pool.</summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        using var steps = Generate(prompt, options, cancellation).GetEnumerator();
        while (await Task.Run(steps.MoveNext, cancellation).ConfigureAwait(false))
            yield return steps.Current;
    }

    private IEnumerable<GeneratedToken> Run(IReadOnlyList<int> prompt, GenerationOptions options, Sampler sampler, CancellationToken cancellation)
    {
        var c = Model.Config;
        int capacity = (int)Math.Min(c.ContextLength, (long)prompt.Count + Math.Max(options.MaxTokens, 1));
        var cache = Model.CreateCache(capacity);
        var history = new int[capacity + 1];
        for (int i = 0; i < prompt.Count; i++) history[i] = prompt[i];
        int length = prompt.Count;
        var stops = StopSet(options);
        var logits = new float[c.VocabSize];
        var decoder = new Utf8StreamDecoder(Tokenizer, prompt[^1]);
        var text = new StringBuilder();
        var wantTop = options.Sampling.TopLogprobs > 0;
        bool wantLogprob = options.Sampling.Logprobs || wantTop;
        var constraint = options.Constraint?.Invoke(new Constraints.ConstraintContext(Tokenizer, prompt[^1], stops));

        if (options.MaxTokens == 0) yield break;
        cancellation.ThrowIfCancellationRequested();
        _batcher.Enter(); // the batcher waits briefly for active sequences' steps; Leave runs even if the consumer stops early
        try
        {
            var step = new ForwardBatcher.Step { Cache = cache, Tokens = history.AsMemory(0, length), Start = 0, Logits = logits };
            _batcher.Run(step);

            for (int generated = 1; ; generated++)
            {
                // The budget (token limit or context, whichever ends first) leaves the last slot for the stop token, so a
                // constrained output can finish before generation is cut.
                if (constraint != null && constraint.ApplyToLogits(logits, Math.Min(options.MaxTokens - generated, capacity - length)) == 0)
                    throw new InvalidOperationException("the output constraint allows no token here (the vocabulary cannot continue it)");
                int token = sampler.Sample(logits, history.AsSpan(0, length));
                constraint?.Accept(token);
                float? logprob = wantLogprob ? sampler.LastLogprob : null;
                TokenLogprob[]? top = wantTop ? sampler.LastTopLogprobs.ToArray() : null;
                if (stops.Contains(token) || constraint is { IsFinished: true })
                {
                    text.Clear();
                    decoder.Flush(text);
                    yield return new GeneratedToken(token, text.ToString(), logprob, top, FinishReason.Stop);
                    yield break;
                }
                history[length++] = token;
                text.Clear();
                decoder.Append(token, text);
                bool last = generated >= options.MaxTokens || length > capacity; // a token sampled at the last position cannot be fed back
                if (last) decoder.Flush(text);
                yield return new GeneratedToken(token, text.ToString(), logprob, top, last ? FinishReason.Length : null);
                if (last) yield break;
                cancellation.ThrowIfCancellationRequested();
                step.Tokens = history.AsMemory(length - 1, 1);
                step.Start = length - 1;
                _batcher.Run(step);
            }
        }
        finally { _batcher.Leave(); }
    }

    private HashSet<int> StopSet(GenerationOptions options)
    {
        var stops = new HashSet<int>(options.StopTokenIds);
        if (!options.IgnoreEos)
        {
            foreach (int id in Model.Source.Generation.StopTokenIds) stops.Add(id);
            if (Tokenizer.EosId >= 0) stops.Add(Tokenizer.EosId);
        }
        return stops;
    }

    /// <summary>
    /// Scores <paramref name="tokens"/>: log p(token_i | tokens before it) for every i ≥ 1 from one pass with logits at every
    /// position (the log-softmax of the raw logits), plus the <paramref name="topLogprobs"/> most likely alternatives per position.
    /// Used by perplexity evaluation and by OpenAI <c>echo</c> with <c>logprobs</c>.
    /// </summary>
    public LogLikelihoodResult LogLikelihood(IReadOnlyList<int> tokens, int topLogprobs = 0, CancellationToken cancellation = default)
    {
        var c = Model.Config;
        int n = tokens.Count;
        if (n > c.ContextLength) throw new ArgumentException($"{n} tokens exceed the model's context of {c.ContextLength}");
        if (topLogprobs < 0 || topLogprobs > c.VocabSize) throw new ArgumentException($"top_logprobs must be in [0, {c.VocabSize}]");
        var ids = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = tokens[i];
            if ((uint)ids[i] >= (uint)c.VocabSize) throw new ArgumentException($"token id {ids[i]} is outside the vocabulary [0, {c.VocabSize})");
        }
        var result = new float[n];
        var top = topLogprobs > 0 ? new TokenLogprob[n][] : null;
        if (n > 0) { result[0] = float.NaN; if (top != null) top[0] = []; }
        if (n < 2) return new LogLikelihoodResult(result, top, 0);

        var cache = Model.CreateCache(n);
        var sampler = topLogprobs > 0 ? new Sampler(c.VocabSize, new SamplingOptions { TopLogprobs = topLogprobs, Temperature = 0 }) : null;
        double sum = 0;
        // Logits for every position of a piece: cap the buffer at 8M floats (32 MB) however large the vocabulary.
        int vocab = c.VocabSize, piece = Math.Clamp((8 << 20) / vocab, 1, Model.MaxBatchTokens);
        lock (_batcher.Gate)
        {
            var logits = _scoreLogits ??= new float[(long)piece * vocab];
            // Positions 0..n−2 predict tokens 1..n−1; the last token needs no forward pass.
            for (int start = 0; start < n - 1; start += piece)
            {
                cancellation.ThrowIfCancellationRequested();
                int count = Math.Min(piece, n - 1 - start);
                Model.Forward([new SequenceChunk(cache, ids.AsMemory(start, count), start)], logits, logitsForAllPositions: true);
                for (int i = 0; i < count; i++)
                {
                    var row = logits.AsSpan(i * vocab, vocab);
                    int target = ids[start + i + 1];
                    float lp = row[target] - Sampler.LogSumExp(row);
                    result[start + i + 1] = lp;
                    sum += lp;
                    if (sampler != null)
                    {
                        sampler.Sample(row, ReadOnlySpan<int>.Empty);
                        top![start + i + 1] = sampler.LastTopLogprobs.ToArray();
                    }
                }
            }
        }
        return new LogLikelihoodResult(result, top, sum);
    }
}
