using System.Text;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// Text generation with the whole loop on an <see cref="IDeviceModel"/>: the prompt is prefilled in one forward, then each
/// step feeds the sampled id back; sampling runs on the device (greedy at temperature 0, else top-k with one uniform
/// random number per step from the seeded generator), so only token ids cross to the host.
/// </summary>
public sealed class DeviceTextGenerator(IDeviceModel model, Tokenizer tokenizer)
{
    /// <summary>
    /// Streams up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>, stopping at EOS or a stop id;
    /// <paramref name="topK"/> applies at temperature &gt; 0 (1..64: the device sampler keeps at most 64 candidates).
    /// </summary>
    public IEnumerable<(int Token, string Text)> Generate(IReadOnlyList<int> prompt, int maxTokens, float temperature, int topK,
        ulong seed, IReadOnlyCollection<int>? stopIds = null, CancellationToken cancellation = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("empty prompt");
        if (temperature > 0 && topK is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(topK), topK, "sampling on the GPU needs top-k in 1..64");
        int capacity = (int)Math.Min(model.Config.ContextLength, (long)prompt.Count + Math.Max(maxTokens, 1));
        using var cache = model.CreateCache(capacity);
        var rng = new Xoshiro256(seed);
        var ids = new int[1];
        var uniform = new float[1];
        var decoder = new Utf8StreamDecoder(tokenizer, prompt[^1]);
        var text = new StringBuilder();
        var stops = new HashSet<int>(stopIds ?? []) { tokenizer.EosId };
        model.Forward([new GpuChunk(cache, prompt.ToArray())]);
        for (int generated = 0; generated < maxTokens && cache.Length < capacity; generated++)
        {
            cancellation.ThrowIfCancellationRequested();
            if (temperature <= 0) model.SampleGreedy(ids);
            else
            {
                uniform[0] = (float)rng.NextDouble();
                model.SampleTopK(topK, temperature, uniform, ids);
            }
            if (stops.Contains(ids[0])) yield break;
            text.Clear();
            decoder.Append(ids[0], text);
            yield return (ids[0], text.ToString());
            if (cache.Length >= capacity) yield break;
            model.Forward([new GpuChunk(cache, new[] { ids[0] })]);
        }
    }
}
