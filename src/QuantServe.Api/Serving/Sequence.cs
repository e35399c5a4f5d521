using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Inference.Constraints;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Api.Serving;

/// <summary>
/// One sequence in the batch: its KV cache, sampler, token history and output state. Only the scheduler thread touches
/// it after submission; the request reads its <see cref="Events"/>.
/// </summary>
internal sealed class Sequence
{
    private readonly Channel<GenerationEvent> _events = Channel.CreateUnbounded<GenerationEvent>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly LoadedModel _model;
    private readonly Sampler _sampler;
    private readonly StopSequenceMatcher _stops;
    private readonly HashSet<int> _stopTokens;
    private readonly List<int> _history;
    private readonly StringBuilder _piece = new();
    private readonly long _submitted = Stopwatch.GetTimestamp();
    private readonly JsonConstraint? _json;
    private readonly PickKind? _engineKind;
    private Xoshiro256 _uniforms;
    private Utf8StreamDecoder? _decoder;
    private double? _firstTokenSeconds;
    private int _generated;

    public Sequence(GenerationRequest request, LoadedModel model, int capacity)
    {
        Request = request;
        _model = model;
        Capacity = capacity;
        _sampler = new Sampler(model.Config.VocabSize, request.Sampling);
        _stops = new StopSequenceMatcher(request.StopSequences);
        _stopTokens = [.. model.Generation.StopTokenIds];
        if (model.Tokenizer.EosId >= 0) _stopTokens.Add(model.Tokenizer.EosId);
        _history = new List<int>(Math.Min(capacity, request.Prompt.Length + (request.MaxTokens ?? 256)));
        _history.AddRange(request.Prompt);
        if (request.JsonObject) _json = new JsonConstraint(model.Tokenizer, _stopTokens, request.Prompt[^1]);
        _engineKind = TokenPick.EngineKind(request.Sampling, request.JsonObject);
        if (_engineKind == PickKind.TopK) _uniforms = new Xoshiro256((ulong)Random.Shared.NextInt64());
    }

    public GenerationRequest Request { get; }

    /// <summary>Positions available to this sequence.</summary>
    public int Capacity { get; }

    public ChannelReader<GenerationEvent> Events => _events.Reader;

    /// <summary>The sequence's cache while it is in the batch.</summary>
    public IEngineCache? Cache { get; set; }

    /// <summary>How the next token is chosen on an engine that samples (<see cref="IBatchEngine.SamplesOnEngine"/>):
    /// greedy, top-k with this sequence's next uniform draw, or — when the request needs the host sampler — logits.</summary>
    public TokenPick NextPick()
    {
        var o = Request.Sampling;
        return _engineKind switch
        {
            PickKind.Greedy => TokenPick.Greedy,
            // A float cast can round a double just below 1 up to 1; the device's draw needs [0, 1).
            PickKind.TopK => new TokenPick(PickKind.TopK, o.TopK, o.Temperature, Math.Min((float)_uniforms.NextDouble(), 0.99999994f)),
            _ => TokenPick.Logits,
        };
    }

    /// <summary>Whether the prompt has been processed.</summary>
    public bool Prefilled { get; set; }

    public bool Finished { get; private set; }

    /// <summary>The token the next decode step feeds (the last sampled one).</summary>
    public int LastToken => _history[^1];

    public bool Cancelled => Request.Cancellation.IsCancellationRequested;

    /// <summary>Publishes the prompt's scores (echo with logprobs).</summary>
    public void ReportPrompt(PromptScored scored) => _events.Writer.TryWrite(scored);

    /// <summary>Ends a sequence that generates nothing (max_tokens 0 with echo).</summary>
    public void FinishWithoutTokens() => Finish("length");

    /// <summary>Samples the next token from <paramref name="logits"/> (modified in place) and reports it; finishes the
    /// sequence on an end-of-sequence token, a stop sequence, max_tokens or a full context.</summary>
    public void Step(Span<float> logits)
    {
        if (_decoder is null) _decoder = new Utf8StreamDecoder(_model.Tokenizer, Request.Prompt[^1]);
        if (_json is not null)
        {
            // Only tokens that keep the output a valid (and, within the token budget, closable) JSON object survive.
            int remaining = Math.Min(Request.MaxTokens ?? int.MaxValue, Capacity) - _generated;
            remaining = Math.Min(remaining, Capacity - _history.Count);
            if (_json.ApplyToLogits(logits, Math.Max(1, remaining)) == 0)
            {
                Finish("length");
                return;
            }
        }
        int token = _sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_history));
        bool wantLogprobs = Request.Sampling.Logprobs || Request.Sampling.TopLogprobs > 0;
        float logprob = wantLogprobs ? _sampler.LastLogprob : float.NaN;
        TokenLogprob[]? top = Request.Sampling.TopLogprobs > 0 ? _sampler.LastTopLogprobs.ToArray() : wantLogprobs ? [] : null;
        Emit(token, logprob, top);
    }

    /// <summary>Reports <paramref name="token"/>, chosen by the engine for a pick from <see cref="NextPick"/> (no
    /// logprobs, no JSON constraint: such requests always pick on the host).</summary>
    public void Accept(int token)
    {
        _decoder ??= new Utf8StreamDecoder(_model.Tokenizer, Request.Prompt[^1]);
        Emit(token, float.NaN, null);
    }

    private void Emit(int token, float logprob, TokenLogprob[]? top)
    {
        _history.Add(token);
        _generated++;
        _firstTokenSeconds ??= Stopwatch.GetElapsedTime(_submitted).TotalSeconds;

        if (_stopTokens.Contains(token))
        {
            // The end-of-sequence token is reported (for logprobs) but contributes no text.
            _events.Writer.TryWrite(new TokenGenerated(token, "", "", logprob, top));
            Finish("stop");
            return;
        }

        _json?.Accept(token);
        _piece.Clear();
        _decoder!.Append(token, _piece);
        string raw = _piece.ToString();
        string released = _stops.Push(raw);
        _events.Writer.TryWrite(new TokenGenerated(token, raw, released, logprob, top));
        if (_stops.Stopped || _json?.IsComplete == true) Finish("stop");
        else if (_generated >= (Request.MaxTokens ?? int.MaxValue) || _history.Count >= Capacity) Finish("length");
    }

    private void Finish(string reason)
    {
        if (Finished) return;
        Finished = true;
        string tail = "";
        if (!_stops.Stopped && _decoder is not null)
        {
            _piece.Clear();
            _decoder.Flush(_piece);
            tail = _stops.Push(_piece.ToString());
            tail += _stops.Flush();
            if (_stops.Stopped) reason = "stop";
        }
        _events.Writer.TryWrite(new GenerationFinished(reason, tail, Request.Prompt.Length, _generated, _stops.EmittedLength, _firstTokenSeconds));
        _events.Writer.TryComplete();
    }

    /// <summary>Ends the sequence with an error the request will rethrow.</summary>
    public void Fail(Exception error)
    {
        Finished = true;
        _events.Writer.TryComplete(error);
    }

    /// <summary>Ends a cancelled sequence silently (nobody is listening).</summary>
    public void Abandon()
    {
        Finished = true;
        _events.Writer.TryComplete();
    }
}
