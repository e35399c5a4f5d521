using QuantServe.Engine.Models;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// A model resident on an accelerator: the whole forward pass and sampling run there; the host passes token ids in and
/// gets token ids (or, on request, logits) out. Implemented by the CUDA backend (<see cref="GpuLlamaModel"/>); another
/// backend (Vulkan, ILGPU) implements the same surface.
/// </summary>
public interface IDeviceModel : IDisposable
{
    /// <summary>Hyper-parameters.</summary>
    ModelConfig Config { get; }

    /// <summary>Most tokens per piece and most chunks per call.</summary>
    int MaxBatchTokens { get; }

    /// <summary>A KV cache for one sequence on the device.</summary>
    GpuKvCache CreateCache(int capacity = 0);

    /// <summary>Runs the chunks (each continuing its cache); leaves each chunk's last-token logits on the device.</summary>
    void Forward(ReadOnlySpan<GpuChunk> chunks);

    /// <summary>Copies the last forward's logits (one row per chunk) to the host.</summary>
    void ReadLogits(Span<float> destination);

    /// <summary>Greedy (arg-max) token of each chunk.</summary>
    void SampleGreedy(Span<int> ids);

    /// <summary>Top-k sampled token of each chunk, one uniform random number in [0, 1) per chunk.</summary>
    void SampleTopK(int k, float temperature, ReadOnlySpan<float> uniforms, Span<int> ids);
}

/// <summary>An accelerator backend: opens a device and loads models onto it.</summary>
public interface IComputeBackend : IDisposable
{
    /// <summary>Backend and device, e.g. <c>cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 81079 MiB)</c>.</summary>
    string Description { get; }

    /// <summary>Uploads <paramref name="model"/> to the device.</summary>
    IDeviceModel Load(LoadedModel model, int maxBatchTokens);
}
