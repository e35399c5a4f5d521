using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Evaluation;

public sealed class KlDivergenceTests
{
    [Fact]
    public void Compute_ModelAgainstItself_IsZeroWithFullTop1Agreement()
    {
        using var model = ModelLoader.Load(EvalText.Prose15mF16);
        using var same = ModelLoader.Load(EvalText.Prose15mF16);
        var r = KlDivergence.Compute(same, model, EvalText.Prefix, 32, maxChunks: 2);
        Assert.Equal(0, r.Mean);
        Assert.Equal(0, r.Max);
        Assert.Equal(0, r.P99);
        Assert.Equal(100, r.Top1Agreement);
        Assert.Equal(r.Base.Value, r.Model.Value);
        Assert.Equal(2 * 15, r.TokensScored);
    }

    [Fact]
    public void Compute_HuggingFaceFolderAgainstF16Gguf_IsBelow1e4()
    {
        using var gguf = ModelLoader.Load(EvalText.Prose15mF16);
        using var hf = ModelLoader.Load(SharedAssets.Prose15m);
        var r = KlDivergence.Compute(hf, gguf, EvalText.Prefix, 32, maxChunks: 2);
        Assert.InRange(r.Mean, -1e-6, 1e-4);
        Assert.InRange(r.Max, -1e-6, 1e-3);
        Assert.True(r.Top1Agreement > 99, $"top-1 agreement {r.Top1Agreement}%");
        Assert.Equal(r.Base.Value, r.Model.Value, r.Base.Value * 1e-3);
    }

    [Fact]
    public void Percentile_SortedValues_InterpolatesLikeLlamaCpp()
    {
        float[] v = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        Assert.Equal(9.9, KlDivergenceResult.Percentile(v, 0.99), 5);
        Assert.Equal(5, KlDivergenceResult.Percentile(v, 0.5), 5);
        Assert.Equal(0, KlDivergenceResult.Percentile(v, 0));
        Assert.Equal(10, KlDivergenceResult.Percentile(v, 1));
        Assert.Equal(0, KlDivergenceResult.Percentile([], 0.99));
    }
}
