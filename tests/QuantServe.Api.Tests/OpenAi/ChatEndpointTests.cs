using System.Text.Json.Nodes;
using QuantServe.Api.OpenAi.Chat;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Tests.OpenAi;

public sealed class ChatEndpointTests(InProcessServer server) : IClassFixture<InProcessServer>
{
    private HttpClient Client => server.Client;

    private static readonly object[] Messages =
    [
        new { role = "system", content = "Tell stories." },
        new { role = "user", content = new object[] { new { type = "text", text = "A story about a cat" } } },
    ];

    [Fact]
    public async Task Create_GreedyConversation_EqualsEngineGreedyOnTemplatedPrompt()
    {
        var (r, body) = await Json.PostAsync(Client, "/v1/chat/completions", new { model = "stories260K", messages = Messages, max_tokens = 24, temperature = 0 });
        Assert.True(r.IsSuccessStatusCode, body.ToJsonString());
        Assert.Equal("chat.completion", (string?)body["object"]);
        var choice = body["choices"]![0]!;
        Assert.Equal("assistant", (string?)choice["message"]!["role"]);

        // The same prompt through the engine directly: the plain template (stories260K ships none), greedy.
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var prompt = ChatEndpoints.EncodeConversation(model, [
            new ChatMessage { Role = "system", Content = new ChatContent { Text = "Tell stories." } },
            new ChatMessage { Role = "user", Content = new ChatContent { Text = "A story about a cat" } },
        ]);
        Assert.Equal(prompt.Length, (int)body["usage"]!["prompt_tokens"]!);
        var expected = string.Concat(new TextGenerator(model).Generate(prompt, new GenerationOptions { MaxTokens = 24, Sampling = SamplingOptions.Greedy }).Select(t => t.Text));
        Assert.Equal(expected, (string?)choice["message"]!["content"]);
    }

    [Fact]
    public async Task Create_Stream_SendsRoleFirstThenContentThenFinish()
    {
        var (_, plain) = await Json.PostAsync(Client, "/v1/chat/completions", new { model = "stories260K", messages = Messages, max_tokens = 20, seed = 5, temperature = 0.8 });
        var response = await Client.PostAsync("/v1/chat/completions", System.Net.Http.Json.JsonContent.Create(new
        {
            model = "stories260K", messages = Messages, max_tokens = 20, seed = 5, temperature = 0.8, stream = true,
            stream_options = new { include_usage = true }, logprobs = true, top_logprobs = 2,
        }));
        var events = await Json.ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", (string?)c["object"]));
        Assert.Equal("assistant", (string?)chunks[0]["choices"]![0]!["delta"]!["role"]);
        var withChoices = chunks.Where(c => c["choices"]!.AsArray().Count > 0).ToList();
        Assert.Equal((string?)plain["choices"]![0]!["finish_reason"], (string?)withChoices[^1]["choices"]![0]!["finish_reason"]);
        string text = string.Concat(withChoices.Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? ""));
        Assert.Equal((string?)plain["choices"]![0]!["message"]!["content"], text);
        var entries = withChoices.Select(c => c["choices"]![0]!["logprobs"]).Where(l => l is not null).SelectMany(l => l!["content"]!.AsArray()).ToList();
        Assert.NotEmpty(entries);
        Assert.All(entries, e => Assert.Equal(2, e!["top_logprobs"]!.AsArray().Count));
        Assert.Equal((int)plain["usage"]!["completion_tokens"]!, (int)chunks[^1]["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Create_WithLogprobs_ReportsTokensWhoseTextsFormTheContent()
    {
        var (_, body) = await Json.PostAsync(Client, "/v1/chat/completions", new { model = "stories260K", messages = Messages, max_tokens = 12, temperature = 0, logprobs = true, top_logprobs = 3 });
        var choice = body["choices"]![0]!;
        var content = choice["logprobs"]!["content"]!.AsArray();
        Assert.Equal((string?)choice["message"]!["content"], string.Concat(content.Select(e => (string)e!["token"]!)));
        foreach (var e in content)
        {
            var bytes = e!["bytes"]!.AsArray().Select(b => (byte)(int)b!).ToArray();
            Assert.Equal((string)e["token"]!, System.Text.Encoding.UTF8.GetString(bytes));
            Assert.Equal(3, e["top_logprobs"]!.AsArray().Count);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Create_JsonObjectFormat_ReturnsParsableObject(int seed)
    {
        var (r, body) = await Json.PostAsync(Client, "/v1/chat/completions", new
        {
            model = "stories260K", messages = Messages, max_tokens = 120, seed, temperature = 1,
            response_format = new { type = "json_object" },
        });
        Assert.True(r.IsSuccessStatusCode, body.ToJsonString());
        string content = (string)body["choices"]![0]!["message"]!["content"]!;
        using var doc = System.Text.Json.JsonDocument.Parse(content);
        Assert.Equal(System.Text.Json.JsonValueKind.Object, doc.RootElement.ValueKind);
        Assert.Equal("stop", (string?)body["choices"]![0]!["finish_reason"]);
    }
}
