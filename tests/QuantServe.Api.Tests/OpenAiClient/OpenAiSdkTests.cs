#pragma warning disable OPENAI001 // Seed and the legacy completions client are marked experimental by the SDK.
using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using ChatContent = QuantServe.Api.OpenAi.Chat.ChatContent;
using ChatEndpoints = QuantServe.Api.OpenAi.Chat.ChatEndpoints;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Tests.OpenAiClient;

/// <summary>The official OpenAI .NET SDK against the real server on Kestrel (127.0.0.1, random port).</summary>
public sealed class OpenAiSdkTests(KestrelServer server) : IClassFixture<KestrelServer>
{
    private OpenAIClient Sdk() => new(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "/v1") });

    private static readonly ChatMessage[] Conversation = [new SystemChatMessage("Tell stories."), new UserChatMessage("A story about a dog")];

    [Fact]
    public async Task Models_ListAndRetrieve_ReturnsEmbeddedModel()
    {
        var models = Sdk().GetOpenAIModelClient();
        var list = (await models.GetModelsAsync()).Value;
        var model = Assert.Single(list, m => m.Id == "stories260K");
        Assert.Equal("quantserve", model.OwnedBy);
        Assert.Equal("stories260K", (await models.GetModelAsync("stories260K")).Value.Id);
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => models.GetModelAsync("nope"));
        Assert.Equal(404, missing.Status);
    }

    [Fact]
    public async Task Chat_Complete_ReturnsAssistantTextAndUsage()
    {
        var chat = Sdk().GetChatClient("stories260K");
        var completion = (await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 })).Value;
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(16, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 0);
    }

    [Fact]
    public async Task Chat_Streaming_EqualsNonStreamedForSameSeed()
    {
        var chat = Sdk().GetChatClient("stories260K");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 30, Temperature = 0.9f, Seed = 99 };
        string expected = (await chat.CompleteChatAsync(Conversation, options)).Value.Content[0].Text;
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(Conversation, options))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(expected, text.ToString());
        Assert.NotNull(finish);
    }

    [Fact]
    public async Task Completions_ThroughSdkPipeline_ReturnsTextCompletion()
    {
        // SDK 2.15 keeps its legacy completions client internal, so the request goes through the SDK's public pipeline.
        var pipeline = Sdk().Pipeline;
        using var message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(server.BaseAddress, "/v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromObjectAsJson(new { model = "stories260K", prompt = "Once upon a time", max_tokens = 12, temperature = 0 }));
        await pipeline.SendAsync(message);
        Assert.Equal(200, message.Response!.Status);
        var json = JsonNode.Parse(message.Response.Content.ToString())!;
        Assert.Equal("text_completion", (string?)json["object"]);
        Assert.StartsWith(", there was a little girl", (string?)json["choices"]![0]!["text"]);
    }

    [Fact]
    public async Task Completions_StreamOverKestrel_EndsWithDone()
    {
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        var response = await http.PostAsync("/v1/completions", System.Net.Http.Json.JsonContent.Create(new { model = "stories260K", prompt = "Once upon a time", max_tokens = 12, temperature = 0, stream = true }));
        var events = await Json.ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        string text = string.Concat(events[..^1].Select(e => (string)JsonNode.Parse(e)!["choices"]![0]!["text"]!));
        Assert.StartsWith(", there was a little girl", text);
    }

    [Fact]
    public async Task Chat_ThirtyTwoConcurrentStreams_AllFinishWithTheirOwnText()
    {
        var chat = Sdk().GetChatClient("stories260K");
        ChatCompletionOptions Options(int seed) => new() { MaxOutputTokenCount = 16, Temperature = 0.8f, Seed = seed };
        // Each client's text must equal what the engine alone produces for its seed, proving batched decoding keeps
        // sequences apart.
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var prompt = ChatEndpoints.EncodeConversation(model, [
            new QuantServe.Api.OpenAi.Chat.ChatMessage { Role = "system", Content = new ChatContent { Text = "Tell stories." } },
            new QuantServe.Api.OpenAi.Chat.ChatMessage { Role = "user", Content = new ChatContent { Text = "A story about a dog" } },
        ]);
        var generator = new TextGenerator(model);
        var expected = Enumerable.Range(0, 32).Select(i => string.Concat(generator.Generate(prompt, new GenerationOptions
        {
            MaxTokens = 16,
            Sampling = new SamplingOptions { Temperature = 0.8f, Seed = (ulong)i },
        }).Select(t => t.Text))).ToArray();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var streams = Enumerable.Range(0, 32).Select(async i =>
        {
            var text = new System.Text.StringBuilder();
            await foreach (var update in chat.CompleteChatStreamingAsync(Conversation, Options(i), timeout.Token))
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
            return text.ToString();
        }).ToArray();
        var texts = await Task.WhenAll(streams);
        for (int i = 0; i < 32; i++) Assert.Equal(expected[i], texts[i]);
        Assert.True(texts.Distinct().Count() > 16, "different seeds should mostly give different stories");
    }

    [Fact]
    public async Task Metrics_AfterGeneration_ExposeGenAiInstruments()
    {
        var chat = Sdk().GetChatClient("stories260K");
        await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        string text = await http.GetStringAsync("/metrics");
        Assert.Contains("# TYPE gen_ai_server_request_duration_seconds histogram", text);
        Assert.Contains("# TYPE gen_ai_server_time_to_first_token_seconds histogram", text);
        Assert.Contains("# TYPE gen_ai_server_time_per_output_token_seconds histogram", text);
        Assert.Matches("gen_ai_client_token_usage_count\\{[^}]*gen_ai_operation_name=\"chat\"[^}]*gen_ai_token_type=\"output\"[^}]*\\} [1-9]", text);
        Assert.Matches("gen_ai_client_token_usage_sum\\{[^}]*gen_ai_token_type=\"input\"[^}]*\\} [1-9]", text);
        Assert.Contains("gen_ai_provider_name=\"quantserve\"", text);
        Assert.Contains("gen_ai_request_model=\"stories260K\"", text);
        Assert.Matches("quantserve_generated_tokens_total\\{[^}]*\\} [1-9]", text);
        Assert.Contains("quantserve_requests_running", text);
        Assert.Contains("quantserve_requests_waiting", text);
        Assert.Contains("http_server_request_duration_seconds_bucket", text);
    }
}
