using System.Diagnostics;
using System.Text;
using QuantServe.Api.Logging;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Api.OpenAi.Completions;

/// <summary>POST /v1/completions.</summary>
public static class CompletionsEndpoints
{
    /// <summary>Maps the legacy completions endpoint.</summary>
    public static IEndpointRouteBuilder MapCompletions(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1").WithTags("Completions")
            .MapPost("/completions", CreateAsync)
            .AddEndpointFilter<ValidationFilter<CompletionRequest>>()
            .WithName("CreateCompletion")
            .WithSummary("Completes a prompt (string, strings, token ids or token-id arrays); streams server-sent events with stream=true.")
            .Accepts<CompletionRequest>("application/json")
            .Produces<CompletionResponse>(200, "application/json", "text/event-stream")
            .Produces<OpenAiErrorResponse>(400)
            .Produces<OpenAiErrorResponse>(404)
            .Produces<OpenAiErrorResponse>(429)
            .Produces<OpenAiErrorResponse>(500);
        return app;
    }

    private sealed record Plan(int PromptIndex, int Candidate, int[] Prompt);

    private static async Task<IResult> CreateAsync(CompletionRequest request, HttpContext http, ModelRegistry registry,
        SchedulerPool schedulers, QuantServeTelemetry telemetry)
    {
        var cancellation = http.RequestAborted;
        long started = Stopwatch.GetTimestamp();
        string modelId = request.Model!;
        using var activity = telemetry.StartRequest(QuantServeTelemetry.TextCompletion, modelId);
        var usage = RequestUsageFeature.Of(http);
        usage.Model = modelId;
        using var lease = await registry.AcquireAsync(modelId, cancellation);
        var model = lease.Model;
        var tokenizer = model.Tokenizer;
        var scheduler = schedulers.For(lease);

        var prompts = request.Prompt!.Tokens?.ToList()
            ?? request.Prompt.Texts!.Select(t => tokenizer.Encode(t, tokenizer.AddBosByDefault)).ToList();
        int n = request.N ?? 1;
        int candidates = Math.Max(n, request.BestOf ?? n);
        bool echo = request.Echo == true;
        int? topN = request.Logprobs;
        bool rank = candidates > n;

        var plans = new List<Plan>();
        for (int p = 0; p < prompts.Count; p++)
            for (int c = 0; c < candidates; c++) plans.Add(new Plan(p, c, prompts[p]));
        scheduler.EnsureQueueRoom(plans.Count);
        var readers = plans.Select(plan => scheduler.Submit(new GenerationRequest
        {
            Prompt = plan.Prompt,
            MaxTokens = request.MaxTokens ?? 16,
            Sampling = SamplingMapper.ToOptions(request, model.Generation, plan.Candidate, logprobs: topN is not null || rank, topN ?? 0),
            StopSequences = request.Stop?.Sequences ?? [],
            ScorePrompt = echo && topN is not null,
            PromptTopLogprobs = topN ?? 0,
            Cancellation = cancellation,
        })).ToList();

        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        activity?.SetTag("gen_ai.response.id", id);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string fingerprint = $"qs-{model.SourceFormat}-{model.Precision}";
        int promptTokens = prompts.Sum(p => p.Length);
        string? error = null;
        int completionTokens = 0;
        double? firstToken = null;
        try
        {
            if (request.Stream == true)
            {
                completionTokens = await StreamAsync(http, request, readers, plans, tokenizer, id, created, modelId, fingerprint, promptTokens, n, echo, topN, (s) => firstToken ??= s);
                return TypedResults.Empty;
            }

            var results = await Task.WhenAll(readers.Select(r => SequenceResult.CollectAsync(r, cancellation)));
            completionTokens = results.Sum(r => r.Finished.CompletionTokens);
            firstToken = results.Select(r => r.Finished.FirstTokenSeconds).Where(s => s is not null).DefaultIfEmpty(null).Min();
            var choices = new List<CompletionChoice>();
            for (int p = 0; p < prompts.Count; p++)
            {
                var group = Enumerable.Range(0, plans.Count).Where(i => plans[i].PromptIndex == p).Select(i => results[i]);
                if (rank) group = group.OrderByDescending(r => r.MeanLogprob);
                int j = 0;
                foreach (var r in group.Take(n))
                {
                    var (text, logprobs) = Render(r, prompts[p], tokenizer, echo, topN);
                    choices.Add(new CompletionChoice(text, p * n + j++, logprobs, r.Finished.FinishReason));
                }
            }
            return TypedResults.Ok(new CompletionResponse(id, "text_completion", created, modelId, choices,
                new Usage(promptTokens, completionTokens, promptTokens + completionTokens), fingerprint));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            error = e.GetType().Name;
            throw;
        }
        finally
        {
            usage.PromptTokens = promptTokens;
            usage.CompletionTokens = completionTokens;
            double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            if (!cancellation.IsCancellationRequested)
                telemetry.RecordRequest(QuantServeTelemetry.TextCompletion, modelId, seconds, promptTokens, completionTokens, firstToken, error);
            activity?.SetTag("gen_ai.usage.input_tokens", promptTokens);
            activity?.SetTag("gen_ai.usage.output_tokens", completionTokens);
        }
    }

    /// <summary>Text and legacy logprobs of one finished sequence.</summary>
    private static (string Text, CompletionLogprobs? Logprobs) Render(SequenceResult r, int[] prompt, Tokenizer tokenizer, bool echo, int? topN)
    {
        var (promptText, promptOffsets) = echo ? DecodeWithOffsets(prompt, tokenizer) : ("", []);
        string text = promptText + r.Text;
        if (topN is null) return (text, null);

        var tokens = new List<string>();
        var logprobs = new List<float?>();
        var tops = new List<Dictionary<string, float>?>();
        var offsets = new List<int>();
        if (echo)
        {
            for (int i = 0; i < prompt.Length; i++)
            {
                int prev = i == 0 ? -1 : prompt[i - 1];
                tokens.Add(TokenText(tokenizer, prompt[i], prev));
                offsets.Add(promptOffsets[i]);
                if (i == 0 || r.Prompt is null)
                {
                    logprobs.Add(null);
                    tops.Add(null);
                }
                else
                {
                    logprobs.Add(r.Prompt.Logprobs[i]);
                    tops.Add(TopDictionary(r.Prompt.Top[i], tokenizer, prev));
                }
            }
        }
        int prevToken = prompt[^1];
        foreach (var (t, offset) in r.VisibleTokens())
        {
            tokens.Add(TokenText(tokenizer, t.Token, prevToken));
            logprobs.Add(t.Logprob);
            tops.Add(TopDictionary(t.Top, tokenizer, prevToken));
            offsets.Add(promptText.Length + offset);
            prevToken = t.Token;
        }
        return (text, new CompletionLogprobs(tokens, logprobs, tops, offsets));
    }

    private static async Task<int> StreamAsync(HttpContext http, CompletionRequest request,
        IReadOnlyList<System.Threading.Channels.ChannelReader<GenerationEvent>> readers, List<Plan> plans, Tokenizer tokenizer,
        string id, long created, string modelId, string fingerprint, int promptTokens, int n, bool echo, int? topN, Action<double> firstToken)
    {
        var cancellation = http.RequestAborted;
        ServerSentEvents.Begin(http.Response);
        int completionTokens = 0;
        var previous = plans.Select(p => p.Prompt[^1]).ToArray();
        var offsets = new int[plans.Count];
        var started = new bool[plans.Count];
        try
        {
            await foreach (var (i, e) in ServerSentEvents.MergeAsync(readers, cancellation))
            {
                var plan = plans[i];
                int index = plan.PromptIndex * n + plan.Candidate;
                string prefix = "";
                List<(string, float?, Dictionary<string, float>?, int)> listed = [];
                if (!started[i])
                {
                    started[i] = true;
                    if (echo)
                    {
                        var (promptText, promptOffsets) = DecodeWithOffsets(plan.Prompt, tokenizer);
                        prefix = promptText;
                        offsets[i] = promptText.Length;
                        if (topN is not null)
                            for (int k = 0; k < plan.Prompt.Length; k++)
                            {
                                int prev = k == 0 ? -1 : plan.Prompt[k - 1];
                                var scored = e as PromptScored;
                                listed.Add((TokenText(tokenizer, plan.Prompt[k], prev),
                                    k == 0 || scored is null ? null : scored.Logprobs[k],
                                    k == 0 || scored is null ? null : TopDictionary(scored.Top[k], tokenizer, prev),
                                    promptOffsets[k]));
                            }
                    }
                }
                string text;
                string? finish = null;
                switch (e)
                {
                    case PromptScored when prefix.Length == 0 && listed.Count == 0:
                        continue;
                    case PromptScored:
                        text = "";
                        break;
                    case TokenGenerated t:
                        text = t.Text;
                        if (topN is not null)
                            listed.Add((TokenText(tokenizer, t.Token, previous[i]), t.Logprob, TopDictionary(t.Top, tokenizer, previous[i]), offsets[i]));
                        previous[i] = t.Token;
                        offsets[i] += t.RawText.Length;
                        break;
                    case GenerationFinished f:
                        text = f.Text;
                        finish = f.FinishReason;
                        completionTokens += f.CompletionTokens;
                        if (f.FirstTokenSeconds is { } s) firstToken(s);
                        break;
                    default: continue;
                }
                if (prefix.Length + text.Length == 0 && listed.Count == 0 && finish is null) continue;
                var logprobs = topN is null ? null : new CompletionLogprobs(
                    listed.Select(x => x.Item1).ToList(), listed.Select(x => x.Item2).ToList(),
                    listed.Select(x => x.Item3).ToList(), listed.Select(x => x.Item4).ToList());
                await ServerSentEvents.WriteAsync(http.Response, new CompletionResponse(id, "text_completion", created, modelId,
                    [new CompletionChoice(prefix + text, index, logprobs, finish)], null, fingerprint), cancellation);
            }
            if (request.StreamOptions?.IncludeUsage == true)
                await ServerSentEvents.WriteAsync(http.Response, new CompletionResponse(id, "text_completion", created, modelId, [],
                    new Usage(promptTokens, completionTokens, promptTokens + completionTokens), fingerprint), cancellation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Headers are gone; report the failure in-band as OpenAI does, then end the stream.
            await ServerSentEvents.WriteAsync(http.Response, new OpenAiErrorResponse(
                new OpenAiError("The server had an error while generating: " + e.Message, "server_error")), cancellation);
        }
        await ServerSentEvents.DoneAsync(http.Response, cancellation);
        return completionTokens;
    }

    /// <summary>The prompt's text and each token's character offset in it.</summary>
    internal static (string Text, int[] Offsets) DecodeWithOffsets(int[] tokens, Tokenizer tokenizer)
    {
        var decoder = new Utf8StreamDecoder(tokenizer);
        var sb = new StringBuilder();
        var offsets = new int[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
        {
            offsets[i] = sb.Length;
            decoder.Append(tokens[i], sb);
        }
        decoder.Flush(sb);
        return (sb.ToString(), offsets);
    }

    /// <summary>A token as text for logprob listings: its bytes in context, decoded (lossily when it is part of a character).</summary>
    internal static string TokenText(Tokenizer tokenizer, int token, int previous)
        => Encoding.UTF8.GetString(tokenizer.TokenBytes(token, previous));

    private static Dictionary<string, float>? TopDictionary(TokenLogprob[]? top, Tokenizer tokenizer, int previous)
    {
        if (top is null) return null;
        var d = new Dictionary<string, float>(top.Length);
        foreach (var t in top) d.TryAdd(TokenText(tokenizer, t.Token, previous), t.Logprob);
        return d;
    }
}
