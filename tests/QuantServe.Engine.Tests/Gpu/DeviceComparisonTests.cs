using QuantServe.Engine.Gpu;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>The CPU side of <c>quantserve gpu check</c>, and (where a GPU exists) the GPU side on the real models.</summary>
public class DeviceComparisonTests
{
    private static readonly string[] Prompts = ["Once upon a time", "Lily and Ben", "The little dog"];

    [Fact]
    public void ArgMax_Ties_PickTheLowestIndex()
    {
        Assert.Equal(1, DeviceComparison.ArgMax([0f, 3f, 3f, -1f]));
        Assert.Equal(0, DeviceComparison.ArgMax([float.NegativeInfinity, float.NegativeInfinity]));
    }

    [Fact]
    public void RunCpu_BatchedPrompts_MatchEachPromptAloneAndTheLlama2cReferencePrefix()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var llama = new LlamaModel(model);
        var prompts = Prompts.Select(p => model.Tokenizer.Encode(p, addBos: true)).ToList();
        var batched = DeviceComparison.RunCpu(llama, prompts, 12);
        for (int i = 0; i < prompts.Count; i++)
            Assert.Equal(DeviceComparison.RunCpu(llama, [prompts[i]], 12).Ids[0], batched.Ids[i]);
        var cmp = DeviceComparison.Compare(batched, batched, model.Config.VocabSize);
        Assert.Equal(0, cmp.MaxAbsLogitDiff);
        Assert.True(cmp.GreedyEqual);
        Assert.Equal(12 * prompts.Count, cmp.ComparedSteps);
        string expected = File.ReadAllText(SharedAssets.Path("models", "stories260K", "greedy-once-upon-a-time-200.txt"));
        Assert.StartsWith(model.Tokenizer.Decode([.. prompts[0], .. batched.Ids[0]]), expected);
    }

    [Fact]
    public void Compare_DivergedIds_StopComparingThatSequencesLogits()
    {
        int vocab = 3;
        var a = (new[] { new[] { 1, 2 } }, new List<float[]> { new[] { 0f, 1f, 0f }, new[] { 0f, 0f, 1f } });
        var b = (new[] { new[] { 2, 2 } }, new List<float[]> { new[] { 0f, 1f, 1.5f }, new[] { 9f, 9f, 9f } });
        var r = DeviceComparison.Compare(a, b, vocab);
        Assert.Equal(1, r.ComparedSteps);
        Assert.Equal(1.5, r.MaxAbsLogitDiff, 6);
        Assert.False(r.GreedyEqual);
        Assert.Equal((0, 2), r.Agreement);
    }

    [Fact]
    public void DequantizedReference_F32Model_GivesIdenticalLogits()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var reference = DequantizedReference.Create(model);
        var prompts = new List<int[]> { model.Tokenizer.Encode(Prompts[0], addBos: true) };
        var a = DeviceComparison.RunCpu(new LlamaModel(model), prompts, 4);
        var b = DeviceComparison.RunCpu(new LlamaModel(reference), prompts, 4);
        Assert.True(DeviceComparison.Compare(a, b, model.Config.VocabSize).MaxAbsLogitDiff < 1e-4);
    }

    [Fact]
    public void Requantize_Int4_ReplacesLayerMatricesAndStaysCloseToTheSource()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var q = DequantizedReference.Requantize(model, RtnFormats.Parse("int4-g32")!, RtnFormats.Parse("int8")!);
        Assert.All(q.Weights.Layers.SelectMany(l => l.Matrices), m => Assert.Equal("int4-g32", m.Format.Name));
        Assert.Equal("int8", q.Weights.Output.Format.Name);
        var prompts = new List<int[]> { model.Tokenizer.Encode(Prompts[0], addBos: true) };
        var a = DeviceComparison.RunCpu(new LlamaModel(model), prompts, 2);
        var b = DeviceComparison.RunCpu(new LlamaModel(q), prompts, 2);
        var r = DeviceComparison.Compare(a, b, model.Config.VocabSize);
        Assert.InRange(r.MaxAbsLogitDiff, 1e-4, 0.25 * r.LogitScale);
    }

    [GpuFact]
    public void GpuModel_Stories260K_MatchesCpuLogitsAndGreedyIds()
    {
        using var backend = CudaBackend.Open(0);
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var gpu = new GpuLlamaModel(backend.Device, backend.Kernels, model, 64);
        var prompts = Prompts.Select(p => model.Tokenizer.Encode(p, addBos: true)).ToList();
        var r = DeviceComparison.Compare(DeviceComparison.RunCpu(new LlamaModel(model), prompts, 24), DeviceComparison.RunDevice(gpu, prompts, 24), model.Config.VocabSize);
        Assert.True(r.MaxAbsLogitDiff < 1e-3, $"max |Δlogit| {r.MaxAbsLogitDiff}");
        Assert.True(r.GreedyEqual);
    }

    [GpuFact]
    public void GpuModel_Prose15mQ4K_WithinThreePercentOfTheLogitRange()
    {
        using var backend = CudaBackend.Open(0);
        using var model = ModelLoader.Load(SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-Q4_K_M.gguf"));
        using var gpu = new GpuLlamaModel(backend.Device, backend.Kernels, model, 64);
        var prompts = new List<int[]> { model.Tokenizer.Encode("The Lord is my shepherd", addBos: true) };
        var r = DeviceComparison.Compare(DeviceComparison.RunCpu(new LlamaModel(model), prompts, 8), DeviceComparison.RunDevice(gpu, prompts, 8), model.Config.VocabSize);
        Assert.True(r.MaxAbsLogitDiff <= 0.03 * r.LogitScale, $"max |Δlogit| {r.MaxAbsLogitDiff} of {r.LogitScale}");
    }

    [GpuFact]
    public void DeviceTextGenerator_Greedy_StreamsTheCpuGeneratorsText()
    {
        using var backend = CudaBackend.Open(0);
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var gpu = backend.Load(model, 64);
        var prompt = model.Tokenizer.Encode("Once upon a time", addBos: true);
        var options = new GenerationOptions { MaxTokens = 40, Sampling = SamplingOptions.Greedy };
        string cpu = string.Concat(new TextGenerator(model).Generate(prompt, options).Select(t => t.Text));
        string device = string.Concat(new DeviceTextGenerator(gpu, model.Tokenizer).Generate(prompt, 40, 0, 1, 1).Select(t => t.Text));
        Assert.Equal(cpu, device);
    }
}
