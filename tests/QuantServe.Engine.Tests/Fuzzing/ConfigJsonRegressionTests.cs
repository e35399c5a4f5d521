using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Fuzzing bug 4 (found by the generated config.json cases): with <c>rope_type: llama3</c> the reader tabulates
/// head_dim / 2 frequency factors before the hyper-parameters are validated, so head_dim = -4 threw OverflowException
/// and head_dim = 2147483647 allocated 4 GB and spun for seconds. These are the minimal configs.
/// </summary>
public class ConfigJsonRegressionTests
{
    private static string Config(string headDim) =>
        "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": 768, \"num_hidden_layers\": 1, " +
        "\"num_attention_heads\": 8, \"vocab_size\": 512, \"max_position_embeddings\": 512, \"head_dim\": " + headDim + ", " +
        "\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0, \"low_freq_factor\": 1.0, " +
        "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}";

    [Theory]
    [InlineData("-4")]
    [InlineData("2147483647")]
    [InlineData("0")]
    public void Parse_Llama3RopeWithImplausibleHeadDim_ThrowsModelLoadException(string headDim)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceConfig.Parse("/m/config.json", Config(headDim)));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20);
        Assert.Equal("/m/config.json", e.File);
        Assert.Contains($"head_dim {headDim} is implausible", e.Problem);
    }

    [Fact]
    public void Parse_Llama3RopeWithHeadDim32_TabulatesSixteenFactors()
    {
        var config = HuggingFaceConfig.Parse("/m/config.json", Config("32"));
        Assert.Equal(16, config.RopeFrequencyFactors!.Length);
    }
}
