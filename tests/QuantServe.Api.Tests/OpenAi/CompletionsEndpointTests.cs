using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Tests.OpenAi;

public sealed class CompletionsEndpointTests(InProcessServer server) : IClassFixture<InProcessServer>
{
    private HttpClient Client => server.Client;

    private static string Reference(string file) => File.ReadAllText(SharedAssets.Path("models", "stories260K", file));

    [Fact]
    public async Task Create_GreedyOnceUponATime_MatchesLlama2cReference()
    {
        // run.c -n 200: 200 positions incl. BOS and the 4 prompt tokens → 196 generated tokens; run.c ignores EOS, so it is biased away.
        var (r, body) = await Json.PostAsync(Client, "/v1/completions", new
        {
            model = "stories260K", prompt = "Once upon a time", max_tokens = 196, temperature = 0,
            logit_bias = new Dictionary<string, float> { ["2"] = -100 },
        });
        Assert.True(r.IsSuccessStatusCode, body.ToJsonString());
        var choice = body["choices"]![0]!;
        Assert.Equal("Once upon a time" + (string?)choice["text"] + "\n", Reference("greedy-once-upon-a-time-200.txt"));
        Assert.Equal("length", (string?)choice["finish_reason"]);
        Assert.Equal("text_completion", (string?)body["object"]);
        Assert.StartsWith("cmpl-", (string?)body["id"]);
        Assert.Equal(5, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(196, (int)body["usage"]!["completion_tokens"]!);
        Assert.Equal(201, (int)body["usage"]!["total_tokens"]!);
    }

    [Fact]
    public async Task Create_EchoWithLogprobsAndNoTokens_SumEqualsEngineLogLikelihood()
    {
        const string text = "Lily and Ben went to the park. They saw a big dog.";
        var (r, body) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = text, max_tokens = 0, echo = true, logprobs = 3 });
        Assert.True(r.IsSuccessStatusCode, body.ToJsonString());
        var choice = body["choices"]![0]!;
        Assert.Equal(text, (string?)choice["text"]);
        var lp = choice["logprobs"]!;
        var tokenLogprobs = lp["token_logprobs"]!.AsArray();
        Assert.Null(tokenLogprobs[0]);
        Assert.Null(lp["top_logprobs"]![0]);
        double sum = tokenLogprobs.Skip(1).Sum(v => (double)v!);

        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var ids = model.Tokenizer.Encode(text, addBos: true);
        var expected = new TextGenerator(model).LogLikelihood(ids);
        Assert.Equal(ids.Length, tokenLogprobs.Count);
        Assert.Equal(expected.Sum, sum, 1e-3);
        for (int i = 1; i < ids.Length; i++) Assert.Equal(expected.TokenLogprobs[i], (float)tokenLogprobs[i]!, 1e-4f);

        // text_offset indexes the echoed text; tokens concatenate back to it; each position lists 3 alternatives.
        var tokens = lp["tokens"]!.AsArray().Select(t => (string)t!).ToList();
        var offsets = lp["text_offset"]!.AsArray().Select(o => (int)o!).ToList();
        Assert.Equal(text, string.Concat(tokens));
        for (int i = 0; i < tokens.Count; i++) Assert.Equal(tokens[i], text.Substring(offsets[i], tokens[i].Length));
        Assert.All(lp["top_logprobs"]!.AsArray().Skip(1), t => Assert.Equal(3, t!.AsObject().Count));
    }

    [Fact]
    public async Task Create_StreamWithSeed_EqualsNonStreamedText()
    {
        var request = new { model = "stories260K", prompt = "Lily and Ben", max_tokens = 60, temperature = 0.9, top_p = 0.95, seed = 1234 };
        var (_, plain) = await Json.PostAsync(Client, "/v1/completions", request);
        string expected = (string)plain["choices"]![0]!["text"]!;

        var streamed = await Client.PostAsync("/v1/completions", System.Net.Http.Json.JsonContent.Create(new
        {
            request.model, request.prompt, request.max_tokens, request.temperature, request.top_p, request.seed,
            stream = true, stream_options = new { include_usage = true },
        }));
        Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType?.MediaType);
        var events = await Json.ReadEventsAsync(streamed);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        var usage = chunks[^1]["usage"]!;
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        string text = string.Concat(chunks[..^1].Select(c => (string)c["choices"]![0]!["text"]!));
        Assert.Equal(expected, text);
        Assert.Equal((string?)plain["choices"]![0]!["finish_reason"], (string?)chunks[^2]["choices"]![0]!["finish_reason"]);
        Assert.Equal((int)plain["usage"]!["completion_tokens"]!, (int)usage["completion_tokens"]!);
        Assert.Single(chunks.Select(c => (string)c["id"]!).Distinct());
    }

    [Fact]
    public async Task Create_StopSequence_CutsBeforeItAndReportsStop()
    {
        var (_, full) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 60, temperature = 0 });
        string text = (string)full["choices"]![0]!["text"]!;
        Assert.Contains(" Lily", text);
        var (_, cut) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 60, temperature = 0, stop = new[] { "zzz", "ily" }, logprobs = 0 });
        var choice = cut["choices"]![0]!;
        Assert.Equal(text[..text.IndexOf("ily", StringComparison.Ordinal)], (string?)choice["text"]);
        Assert.Equal("stop", (string?)choice["finish_reason"]);
        // The token that carried the stop text starts before the cut, so it is listed; nothing after it is.
        var offsets = choice["logprobs"]!["text_offset"]!.AsArray().Select(o => (int)o!).ToList();
        Assert.True(offsets[^1] < ((string)choice["text"]!).Length + 3);
    }

    [Fact]
    public async Task Create_TokenArrayPromptsWithN_ReturnsPromptTimesNChoicesInOrder()
    {
        var (r, body) = await Json.PostAsync(Client, "/v1/completions", new
        {
            model = "stories260K", prompt = new[] { new[] { 1, 403, 407, 261 }, new[] { 1, 365 } }, max_tokens = 5, n = 2, seed = 7, temperature = 1,
        });
        Assert.True(r.IsSuccessStatusCode, body.ToJsonString());
        var choices = body["choices"]!.AsArray();
        Assert.Equal([0, 1, 2, 3], choices.Select(c => (int)c!["index"]!));
        Assert.Equal(6, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(20, (int)body["usage"]!["completion_tokens"]!);
        // Same seed, same choices.
        var (_, again) = await Json.PostAsync(Client, "/v1/completions", new
        {
            model = "stories260K", prompt = new[] { new[] { 1, 403, 407, 261 }, new[] { 1, 365 } }, max_tokens = 5, n = 2, seed = 7, temperature = 1,
        });
        Assert.Equal(choices.Select(c => (string)c!["text"]!), again["choices"]!.AsArray().Select(c => (string)c!["text"]!));
    }

    [Fact]
    public async Task Create_BestOf_ReturnsTheHighestMeanLogprobCandidate()
    {
        var (_, best) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = "Once", max_tokens = 8, best_of = 4, n = 1, seed = 3, temperature = 1.5, logprobs = 0 });
        double Mean(JsonNode c) => c["logprobs"]!["token_logprobs"]!.AsArray().Average(v => (double)v!);
        double bestMean = Mean(best["choices"]![0]!);
        for (int i = 0; i < 4; i++)
        {
            // Candidate i of best_of uses seed + i; each alone must not beat the chosen one.
            var (_, single) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = "Once", max_tokens = 8, seed = 3 + i, temperature = 1.5, logprobs = 0 });
            Assert.True(Mean(single["choices"]![0]!) <= bestMean + 1e-6);
        }
        Assert.Equal(32, (int)best["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Create_LogprobsWithoutEcho_ListsGeneratedTokensWithOffsets()
    {
        var (_, body) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 10, temperature = 0, logprobs = 2 });
        var choice = body["choices"]![0]!;
        string text = (string)choice["text"]!;
        var lp = choice["logprobs"]!;
        var tokens = lp["tokens"]!.AsArray().Select(t => (string)t!).ToList();
        Assert.Equal(10, tokens.Count);
        Assert.Equal(text, string.Concat(tokens));
        Assert.Equal(0, (int)lp["text_offset"]![0]!);
        // Greedy picks the most likely token, so it heads its own alternatives.
        for (int i = 0; i < tokens.Count; i++)
        {
            var top = lp["top_logprobs"]![i]!.AsObject();
            Assert.Equal(2, top.Count);
            Assert.Equal((float)lp["token_logprobs"]![i]!, top.Max(kv => (float)kv.Value!), 1e-6f);
        }
    }

    [Fact]
    public async Task Create_EchoWithoutLogprobs_PrependsPrompt()
    {
        var (_, body) = await Json.PostAsync(Client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 5, temperature = 0, echo = true });
        Assert.StartsWith("Once upon a time,", (string?)body["choices"]![0]!["text"]);
    }
}
