using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Gguf;

/// <summary>
/// The accelerator path of <see cref="GgufQuantizer"/> (rows dequantized in chunks, handed over as a batch with the
/// imatrix row) driven by a batch quantizer that runs the CPU reference, so any mistake in the hand-over shows as bytes
/// that differ from llama-quantize's.
/// </summary>
public class GgufQuantizerAcceleratorTests
{
    private static readonly string F16 = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");

    private sealed class BatchReference : IKQuantAccelerator
    {
        public int Calls;
        public long Rows;
        public string Name => "cpu batch reference";
        public bool Supports(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q6_K;

        public void Quantize(GgmlType type, ReadOnlySpan<float> x, int rows, int cols, ReadOnlySpan<float> importance, Span<byte> destination)
        {
            var format = (KQuantFormat)TensorFormats.ForGgml(type)!;
            int rowBytes = (int)format.RowBytes(cols);
            for (int r = 0; r < rows; r++)
                format.QuantizeRow(x.Slice(r * cols, cols), destination.Slice(r * rowBytes, rowBytes), importance);
            Interlocked.Increment(ref Calls);
            Interlocked.Add(ref Rows, rows);
        }
    }

    [Fact]
    public void Quantize_Q4KMThroughAnAccelerator_BlockTensorsEqualLlamaQuantize()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("prose-Q4_K_M.gguf");
        var accelerator = new BatchReference();
        // The Q6_K embedding (32000 rows) dominates the time; stored as Q8_0 here, so it stays on the CPU path.
        GgufQuantizer.Quantize(F16, path, new QuantizeOptions
        {
            Preset = GgufPresets.Find("Q4_K_M"), Accelerator = accelerator, Overrides = [TensorTypeOverride.Parse("^token_embd=Q8_0")],
        });
        using var ours = GgufFile.Open(path);
        using var reference = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q4_K_M.gguf"));
        foreach (var t in reference.Tensors.Where(t => t.Name != "token_embd.weight"))
            Assert.True(t.Span.SequenceEqual(ours.Tensor(t.Name).Span), $"tensor {t.Name} differs from llama-quantize's bytes");
        // Every Q4_K/Q6_K matrix went through the accelerator: 8 layers × 7 matrices (the tied head is the embedding).
        Assert.Equal(56, accelerator.Calls);
        Assert.Equal(8 * (256 + 128 + 128 + 256 + 768 + 768 + 256), accelerator.Rows);
    }

    [Fact]
    public void Quantize_WithImatrixThroughAnAccelerator_EqualsTheCpuPath()
    {
        using var dir = new TempModelFolder();
        var m = new Dictionary<string, float[]>();
        using (var f = GgufFile.Open(F16))
        {
            var rng = new Random(3);
            foreach (var t in f.Tensors.Where(t => t.Dimensions.Count == 2 && t.Name.StartsWith("blk.0.", StringComparison.Ordinal)))
                m[t.Name] = Enumerable.Range(0, (int)t.Dimensions[0]).Select(_ => (float)(0.1 + rng.NextDouble())).ToArray();
        }
        var imatrix = new ImportanceMatrix(m, "test");
        string cpu = dir.Path("cpu.gguf"), acc = dir.Path("acc.gguf");
        var options = new QuantizeOptions { Preset = GgufPresets.Find("Q4_K_M"), Imatrix = imatrix, Overrides = [TensorTypeOverride.Parse("^token_embd=Q8_0")] };
        GgufQuantizer.Quantize(F16, cpu, options);
        GgufQuantizer.Quantize(F16, acc, options with { Accelerator = new BatchReference() });
        Assert.True(File.ReadAllBytes(cpu).AsSpan().SequenceEqual(File.ReadAllBytes(acc)));
    }
}
