using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.OpenAi;

public sealed class ErrorEnvelopeTests(InProcessServer server) : IClassFixture<InProcessServer>
{
    private HttpClient Client => server.Client;

    [Fact]
    public async Task Completions_MalformedJson_Returns400Envelope()
    {
        var (r, body) = await Json.PostRawAsync(Client, "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":");
        Json.AssertError(r, body, 400, "invalid_request_error");
        Assert.Contains("JSON", (string?)body["error"]!["message"]);
    }

    [Fact]
    public async Task Completions_WrongFieldType_Returns400NamingParam()
    {
        var (r, body) = await Json.PostRawAsync(Client, "/v1/completions", "{\"model\":\"stories260K\",\"prompt\":\"a\",\"max_tokens\":\"ten\"}");
        Json.AssertError(r, body, 400, "invalid_request_error", param: "max_tokens");
    }

    [Fact]
    public async Task Completions_NotJsonContentType_Returns415Envelope()
    {
        var (r, body) = await Json.PostRawAsync(Client, "/v1/completions", "prompt=a", "application/x-www-form-urlencoded");
        Json.AssertError(r, body, 415, "invalid_request_error");
    }

    [Fact]
    public async Task V1_UnknownRoute_Returns404Envelope()
    {
        var r = await Client.GetAsync("/v1/engines");
        var body = System.Text.Json.Nodes.JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Json.AssertError(r, body, 404, "invalid_request_error", code: "unknown_url");
    }

    [Fact]
    public async Task Models_WrongMethod_Returns405Envelope()
    {
        var (r, body) = await Json.PostRawAsync(Client, "/v1/models", "{}");
        Json.AssertError(r, body, 405, "invalid_request_error");
    }

    [Theory]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"suffix\":\"b\"}", "suffix")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"temperature\":2.5}", "temperature")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"top_p\":0}", "top_p")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"n\":0}", "n")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"logprobs\":21}", "logprobs")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"logit_bias\":{\"x\":1}}", "logit_bias")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"best_of\":1,\"n\":2}", "best_of")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"presence_penalty\":3}", "presence_penalty")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", "stream_options")]
    [InlineData("{\"model\":\"stories260K\"}", "prompt")]
    [InlineData("{\"prompt\":\"a\"}", "model")]
    [InlineData("{\"model\":\"stories260K\",\"prompt\":[[1,2],[]]}", "prompt")]
    public async Task Completions_InvalidField_Returns400NamingIt(string json, string param)
    {
        var (r, body) = await Json.PostRawAsync(Client, "/v1/completions", json);
        Json.AssertError(r, body, 400, "invalid_request_error", param: param);
    }

    [Theory]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[]}", "messages")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_logprobs\":2}", "top_logprobs")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":\"yaml\"}}", "response_format")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":0}", "max_completion_tokens")]
    public async Task Chat_InvalidField_Returns400NamingIt(string json, string param)
    {
        var (r, body) = await Json.PostRawAsync(Client, "/v1/chat/completions", json);
        Json.AssertError(r, body, 400, "invalid_request_error", param: param);
    }

    [Fact]
    public async Task Completions_UnknownModel_Returns404ModelNotFound()
    {
        var (r, body) = await Json.PostAsync(Client, "/v1/completions", new { model = "gpt-nope", prompt = "a" });
        Json.AssertError(r, body, 404, "invalid_request_error", param: "model", code: "model_not_found");
    }

    [Fact]
    public async Task Completions_PromptLongerThanContext_Returns400ContextLengthExceeded()
    {
        var prompt = Enumerable.Repeat(300, 600).Prepend(1).ToArray(); // stories260K has 512 positions
        var (r, body) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt, max_tokens = 4 });
        Json.AssertError(r, body, 400, "invalid_request_error", code: "context_length_exceeded");
    }

    [Fact]
    public async Task Completions_TokenOutsideVocabulary_Returns400()
    {
        var (r, body) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = new[] { 1, 9999 }, max_tokens = 2 });
        Json.AssertError(r, body, 400, "invalid_request_error", param: "prompt");
    }
}

public sealed class OverloadAndFailureTests
{
    [Fact]
    public async Task Completions_QueueFull_Returns429WithRetryAfter()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:MaxQueue"] = "0", ["QuantServe:RetryAfterSeconds"] = "7" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        var (r, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once", max_tokens = 2 });
        Json.AssertError(r, body, 429, "rate_limit_error");
        Assert.Equal("7", r.Headers.GetValues("Retry-After").Single());
    }

    [Fact]
    public async Task Completions_ModelFileCorrupt_Returns500Envelope()
    {
        string dir = Directory.CreateTempSubdirectory("quantserve-models-").FullName;
        try
        {
            await File.WriteAllBytesAsync(Path.Combine(dir, "broken.gguf"), "GGUF not really a model"u8.ToArray());
            await using var factory = new QuantServeFactory(new() { ["QuantServe:ModelsDirectory"] = dir });
            using var client = factory.CreateClient();
            var models = await client.GetStringAsync("/v1/models");
            Assert.Contains("\"broken\"", models);
            var (r, body) = await Json.PostAsync(client, "/v1/completions", new { model = "broken", prompt = "Once", max_tokens = 2 });
            Json.AssertError(r, body, 500, "server_error", code: "model_load_failed");
            Assert.Contains("broken.gguf", (string?)body["error"]!["message"]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
