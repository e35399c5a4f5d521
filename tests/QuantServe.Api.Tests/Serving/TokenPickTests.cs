using QuantServe.Api.Serving;
using QuantServe.Engine.Inference;

namespace QuantServe.Api.Tests.Serving;

public sealed class TokenPickTests
{
    [Fact]
    public void EngineKind_GreedyOrTopKOne_SampledOnTheEngine()
    {
        Assert.Equal(PickKind.Greedy, TokenPick.EngineKind(SamplingOptions.Greedy, jsonObject: false));
        Assert.Equal(PickKind.Greedy, TokenPick.EngineKind(new SamplingOptions { Temperature = 0.7f, TopK = 1, Seed = 3 }, false));
        // A seed does not matter to the arg-max.
        Assert.Equal(PickKind.Greedy, TokenPick.EngineKind(new SamplingOptions { Temperature = 0, Seed = 9, TopP = 0.5f }, false));
    }

    [Fact]
    public void EngineKind_PlainTopK_SampledOnTheEngineUpToSixtyFour()
    {
        Assert.Equal(PickKind.TopK, TokenPick.EngineKind(new SamplingOptions { Temperature = 0.8f, TopK = 40 }, false));
        Assert.Equal(PickKind.TopK, TokenPick.EngineKind(new SamplingOptions { Temperature = 1.3f, TopK = 64 }, false));
        Assert.Null(TokenPick.EngineKind(new SamplingOptions { Temperature = 0.8f, TopK = 65 }, false));
        Assert.Null(TokenPick.EngineKind(new SamplingOptions { Temperature = 0.8f, TopK = 0 }, false));
    }

    [Fact]
    public void EngineKind_AnythingTheDeviceSamplerCannotHonour_NeedsHostLogits()
    {
        var topK = new SamplingOptions { Temperature = 0.8f, TopK = 40 };
        Assert.Null(TokenPick.EngineKind(topK with { Seed = 1 }, false));
        Assert.Null(TokenPick.EngineKind(topK with { TopP = 0.9f }, false));
        Assert.Null(TokenPick.EngineKind(topK with { MinP = 0.05f }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy with { Logprobs = true }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy with { TopLogprobs = 2 }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [5] = 2 } }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy with { RepetitionPenalty = 1.1f }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy with { PresencePenalty = 0.5f }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy with { FrequencyPenalty = 0.5f }, false));
        Assert.Null(TokenPick.EngineKind(SamplingOptions.Greedy, jsonObject: true));
        // An empty bias changes nothing.
        Assert.Equal(PickKind.Greedy, TokenPick.EngineKind(SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float>() }, false));
    }
}
