using System.Diagnostics;
using System.Text;
using QuantServe.Api.Logging;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.ChatTemplates;
using TemplateMessage = QuantServe.Engine.Tokenization.ChatTemplates.ChatMessage;

namespace QuantServe.Api.OpenAi.Chat;

/// <summary>POST /v1/chat/completions.</summary>
public static class ChatEndpoints
{
    /// <summary>Maps the chat completions endpoint.</summary>
    public static IEndpointRouteBuilder MapChat(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1").WithTags("Chat")
            .MapPost("/chat/completions", CreateAsync)
            .AddEndpointFilter<ValidationFilter<ChatCompletionRequest>>()
            .WithName("CreateChatCompletion")
            .WithSummary("Answers a conversation using the model's chat template; streams chat.completion.chunk events with stream=true.")
            .Accepts<ChatCompletionRequest>("application/json")
            .Produces<ChatCompletionResponse>(200, "application/json", "text/event-stream")
            .Produces<OpenAiErrorResponse>(400)
            .Produces<OpenAiErrorResponse>(404)
            .Produces<OpenAiErrorResponse>(429)
            .Produces<OpenAiErrorResponse>(500);
        return app;
    }

    /// <summary>The prompt tokens of a conversation: the model's template (or the documented plain one) rendered with a
    /// generation prompt, special-token texts parsed, BOS added only when the template did not write it.</summary>
    public static int[] EncodeConversation(LoadedModel model, IReadOnlyList<ChatMessage> messages)
    {
        var tokenizer = model.Tokenizer;
        string bos = tokenizer.BosId >= 0 ? tokenizer.TokenText(tokenizer.BosId) : "";
        string eos = tokenizer.EosId >= 0 ? tokenizer.TokenText(tokenizer.EosId) : "";
        ChatTemplate template;
        try
        {
            template = ChatTemplate.ForModel(model.ChatTemplate);
        }
        catch (JinjaException e)
        {
            throw new OpenAiException(500, new OpenAiError($"The model's chat template cannot be parsed: {e.Message}", "server_error", null, "invalid_chat_template"));
        }
        string prompt;
        try
        {
            prompt = template.Render(
                messages.Select(m => new TemplateMessage(m.Role!, m.Content!.Text)).ToList(),
                addGenerationPrompt: true, bosToken: bos, eosToken: eos);
        }
        catch (JinjaException e)
        {
            // A template that raises (e.g. roles must alternate) is rejecting the conversation: the client's fault.
            throw OpenAiException.BadRequest($"The model's chat template rejected the conversation: {e.Message}", "messages");
        }
        bool addBos = tokenizer.AddBosByDefault && !(bos.Length > 0 && prompt.StartsWith(bos, StringComparison.Ordinal));
        return tokenizer.Encode(prompt, addBos, parseSpecial: true);
    }

    private static async Task<IResult> CreateAsync(ChatCompletionRequest request, HttpContext http, ModelRegistry registry,
        SchedulerPool schedulers, QuantServeTelemetry telemetry)
    {
        var cancellation = http.RequestAborted;
        long started = Stopwatch.GetTimestamp();
        string modelId = request.Model!;
        using var activity = telemetry.StartRequest(QuantServeTelemetry.Chat, modelId);
        var usage = RequestUsageFeature.Of(http);
        usage.Model = modelId;
        using var lease = await registry.AcquireAsync(modelId, cancellation);
        var model = lease.Model;
        var tokenizer = model.Tokenizer;
        var scheduler = schedulers.For(lease);

        int[] prompt = EncodeConversation(model, request.Messages!);
        int n = request.N ?? 1;
        bool logprobs = request.Logprobs == true;
        int topN = request.TopLogprobs ?? 0;
        bool json = request.ResponseFormat?.Type == "json_object";
        scheduler.EnsureQueueRoom(n);
        var readers = Enumerable.Range(0, n).Select(j => scheduler.Submit(new GenerationRequest
        {
            Prompt = prompt,
            MaxTokens = request.TokenLimit,
            Sampling = SamplingMapper.ToOptions(request, model.Generation, j, logprobs, topN),
            StopSequences = request.Stop?.Sequences ?? [],
            JsonObject = json,
            Cancellation = cancellation,
        })).ToList();

        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        activity?.SetTag("gen_ai.response.id", id);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string fingerprint = $"qs-{model.SourceFormat}-{model.Precision}";
        int promptTokens = prompt.Length;
        int completionTokens = 0;
        double? firstToken = null;
        string? error = null;
        try
        {
            if (request.Stream == true)
            {
                completionTokens = await StreamAsync(http, request, readers, tokenizer, prompt[^1], id, created, modelId, fingerprint, promptTokens, logprobs, s => firstToken ??= s);
                return TypedResults.Empty;
            }
            var results = await Task.WhenAll(readers.Select(r => SequenceResult.CollectAsync(r, cancellation)));
            completionTokens = results.Sum(r => r.Finished.CompletionTokens);
            firstToken = results.Select(r => r.Finished.FirstTokenSeconds).Where(s => s is not null).DefaultIfEmpty(null).Min();
            var choices = results.Select((r, j) => new ChatChoice(j, new ChatResponseMessage("assistant", r.Text.ToString()), null,
                logprobs ? new ChatLogprobs(r.VisibleTokens().Where(t => !IsStopToken(model, t.Token.Token))
                    .Select(t => Entry(tokenizer, t.Token, PreviousOf(r, t.Token, prompt[^1]))).ToList()) : null,
                r.Finished.FinishReason)).ToList();
            return TypedResults.Ok(new ChatCompletionResponse(id, "chat.completion", created, modelId, choices,
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
            if (!cancellation.IsCancellationRequested)
                telemetry.RecordRequest(QuantServeTelemetry.Chat, modelId, Stopwatch.GetElapsedTime(started).TotalSeconds,
                    promptTokens, completionTokens, firstToken, error);
            activity?.SetTag("gen_ai.usage.input_tokens", promptTokens);
            activity?.SetTag("gen_ai.usage.output_tokens", completionTokens);
        }
    }

    private static bool IsStopToken(LoadedModel model, int token)
        => token == model.Tokenizer.EosId || model.Generation.StopTokenIds.Contains(token);

    private static int PreviousOf(SequenceResult r, TokenGenerated t, int promptLast)
    {
        int i = r.Tokens.IndexOf(t);
        return i <= 0 ? promptLast : r.Tokens[i - 1].Token;
    }

    private static ChatTokenLogprob Entry(Tokenizer tokenizer, TokenGenerated t, int previous)
    {
        var bytes = tokenizer.TokenBytes(t.Token, previous).ToArray();
        return new ChatTokenLogprob(Encoding.UTF8.GetString(bytes), t.Logprob, bytes.Select(b => (int)b).ToList(),
            (t.Top ?? []).Select(a =>
            {
                var ab = tokenizer.TokenBytes(a.Token, previous).ToArray();
                return new ChatTopLogprob(Encoding.UTF8.GetString(ab), a.Logprob, ab.Select(b => (int)b).ToList());
            }).ToList());
    }

    private static async Task<int> StreamAsync(HttpContext http, ChatCompletionRequest request,
        IReadOnlyList<System.Threading.Channels.ChannelReader<GenerationEvent>> readers, Tokenizer tokenizer, int promptLast,
        string id, long created, string modelId, string fingerprint, int promptTokens, bool logprobs, Action<double> firstToken)
    {
        var cancellation = http.RequestAborted;
        ServerSentEvents.Begin(http.Response);
        int completionTokens = 0;
        var previous = Enumerable.Repeat(promptLast, readers.Count).ToArray();
        ChatCompletionResponse Chunk(ChatChoice choice) => new(id, "chat.completion.chunk", created, modelId, [choice], null, fingerprint);
        try
        {
            for (int j = 0; j < readers.Count; j++)
                await ServerSentEvents.WriteAsync(http.Response, Chunk(new ChatChoice(j, null, new ChatResponseMessage("assistant", ""), null, null)), cancellation);
            await foreach (var (j, e) in ServerSentEvents.MergeAsync(readers, cancellation))
            {
                switch (e)
                {
                    case TokenGenerated t:
                        var entry = logprobs && t.RawText.Length > 0 ? Entry(tokenizer, t, previous[j]) : null;
                        previous[j] = t.Token;
                        if (t.Text.Length == 0 && entry is null) continue;
                        await ServerSentEvents.WriteAsync(http.Response, Chunk(new ChatChoice(j, null, new ChatResponseMessage(null, t.Text),
                            entry is null ? null : new ChatLogprobs([entry]), null)), cancellation);
                        break;
                    case GenerationFinished f:
                        completionTokens += f.CompletionTokens;
                        if (f.FirstTokenSeconds is { } s) firstToken(s);
                        await ServerSentEvents.WriteAsync(http.Response, Chunk(new ChatChoice(j, null,
                            new ChatResponseMessage(null, f.Text.Length > 0 ? f.Text : null), null, f.FinishReason)), cancellation);
                        break;
                }
            }
            if (request.StreamOptions?.IncludeUsage == true)
                await ServerSentEvents.WriteAsync(http.Response, new ChatCompletionResponse(id, "chat.completion.chunk", created, modelId, [],
                    new Usage(promptTokens, completionTokens, promptTokens + completionTokens), fingerprint), cancellation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await ServerSentEvents.WriteAsync(http.Response, new OpenAiErrorResponse(
                new OpenAiError("The server had an error while generating: " + e.Message, "server_error")), cancellation);
        }
        await ServerSentEvents.DoneAsync(http.Response, cancellation);
        return completionTokens;
    }
}
