using QuantServe.Engine.Quantization.Presets;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>How to quantize a model to GGUF.</summary>
public sealed record QuantizeOptions
{
    /// <summary>The llama.cpp file type.</summary>
    public required GgufPreset Preset { get; init; }

    /// <summary>Worker threads (default: every core).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>User rules applied after the preset's (last match wins).</summary>
    public IReadOnlyList<TensorTypeOverride> Overrides { get; init; } = [];

    /// <summary>Optional importance weights for the k-quants.</summary>
    public ImportanceMatrix? Imatrix { get; init; }

    /// <summary><c>general.name</c> for sources without one (default: the source's file or folder name).</summary>
    public string? Name { get; init; }

    /// <summary>Runs the k-quant searches it supports (a GPU) instead of the CPU, with identical output; null: the CPU.</summary>
    public IKQuantAccelerator? Accelerator { get; init; }

    /// <summary>Called as work proceeds (from worker threads; keep it cheap).</summary>
    public IProgress<QuantizeProgress>? Progress { get; init; }
}

/// <summary>Progress of a quantization: the fraction of all tensor elements done and the tensor being written.</summary>
/// <param name="Fraction">0..1.</param>
/// <param name="Tensor">GGUF name of the current tensor.</param>
/// <param name="Index">Its position (0-based).</param>
/// <param name="Count">Number of tensors.</param>
public sealed record QuantizeProgress(double Fraction, string Tensor, int Index, int Count);

/// <summary>What one tensor became.</summary>
/// <param name="Tensor">The plan entry (name, shape, source and output types, rule).</param>
/// <param name="BytesBefore">Bytes in the source.</param>
/// <param name="BytesAfter">Bytes written.</param>
public sealed record QuantizedTensor(PlannedTensor Tensor, long BytesBefore, long BytesAfter);

/// <summary>The outcome of a quantization.</summary>
/// <param name="OutputPath">The GGUF written.</param>
/// <param name="Preset">The file type.</param>
/// <param name="Tensors">Per-tensor report, in file order.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record QuantizeResult(string OutputPath, GgufPreset Preset, IReadOnlyList<QuantizedTensor> Tensors, double Seconds)
{
    /// <summary>Tensor bytes in the source.</summary>
    public long BytesBefore => Tensors.Sum(t => t.BytesBefore);

    /// <summary>Tensor bytes written.</summary>
    public long BytesAfter => Tensors.Sum(t => t.BytesAfter);

    /// <summary>Weights written (every tensor element).</summary>
    public long Parameters => Tensors.Sum(t => t.Tensor.Elements);

    /// <summary>Bits per weight of the output: 8 · <see cref="BytesAfter"/> / <see cref="Parameters"/>.</summary>
    public double BitsPerWeight => Parameters == 0 ? 0 : 8.0 * BytesAfter / Parameters;

    /// <summary>Number of tensors written in each type.</summary>
    public IReadOnlyDictionary<string, int> TypeCounts =>
        Tensors.GroupBy(t => t.Tensor.Type.ToString()).OrderByDescending(g => g.Count()).ToDictionary(g => g.Key, g => g.Count());
}
