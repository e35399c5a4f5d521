using System.Buffers;
using System.Runtime.InteropServices;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Evaluation;

/// <summary>
/// Writes a Llama-shaped GGUF with random weights, for speed and memory measurements of shapes no shared file has
/// (TinyLlama-1.1B: hidden 2048, 22 layers, intermediate 5632, 32 heads, 4 KV heads, vocab 32000). Matrices are F16
/// draws from N(0, σ²) with σ = 0.02 (the initializer scale of Llama checkpoints), norms are 1; the result is generated on
/// demand, never committed, and is deterministic for a seed.
/// </summary>
public static class SyntheticModel
{
    /// <summary>TinyLlama-1.1B's shape (separate output head, context 2048).</summary>
    public static ModelConfig TinyLlama => new()
    {
        Dim = 2048, HiddenDim = 5632, Layers = 22, Heads = 32, KvHeads = 4, HeadDim = 64,
        VocabSize = 32000, ContextLength = 2048, RopeTheta = 10000f, NormEps = 1e-5f, TiedEmbeddings = false,
    };

    /// <summary>Writes the model to <paramref name="path"/> (atomically) with <paramref name="tokenizer"/>'s vocabulary,
    /// whose size must equal <c>config.VocabSize</c>.</summary>
    public static void WriteGguf(string path, ModelConfig config, Tokenizer tokenizer, ulong seed = 1, float sigma = 0.02f)
    {
        config.Validate(path);
        if (tokenizer.VocabSize != config.VocabSize)
            throw new ArgumentException($"the vocabulary has {tokenizer.VocabSize} tokens but the shape needs {config.VocabSize}");
        var writer = new GgufWriter(ModelMetadata.Build(config, tokenizer, null, path, "synthetic"));
        writer.Metadata.Set("general.file_type", GgufValue.FromUInt32(1)); // mostly F16
        ulong stream = seed;
        foreach (var (name, shape, required) in GgufModelLoader.Layout(config))
        {
            if (!required) continue;
            if (shape.Length == 1)
            {
                var ones = new float[shape[0]];
                Array.Fill(ones, 1f);
                writer.AddTensor(name, shape, GgmlType.F32, MemoryMarshal.AsBytes(ones.AsSpan()).ToArray());
                continue;
            }
            long count = shape[0] * shape[1];
            ulong tensorSeed = ++stream * 0x9E3779B97F4A7C15UL;
            writer.AddTensor(name, shape, GgmlType.F16, output => WriteNormalHalves(output, count, tensorSeed, sigma));
        }
        writer.Write(path);
    }

    private static void WriteNormalHalves(Stream output, long count, ulong seed, float sigma)
    {
        var rng = new Xoshiro256(seed);
        const int Chunk = 1 << 16;
        var buffer = ArrayPool<Half>.Shared.Rent(Chunk);
        try
        {
            for (long done = 0; done < count;)
            {
                int n = (int)Math.Min(Chunk, count - done);
                for (int i = 0; i < n; i += 2)
                {
                    // Box–Muller: two independent normal draws per pair of uniforms.
                    double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                    double r = Math.Sqrt(-2.0 * Math.Log(u1)) * sigma;
                    buffer[i] = (Half)(r * Math.Cos(2 * Math.PI * u2));
                    if (i + 1 < n) buffer[i + 1] = (Half)(r * Math.Sin(2 * Math.PI * u2));
                }
                output.Write(MemoryMarshal.AsBytes(buffer.AsSpan(0, n)));
                done += n;
            }
        }
        finally
        {
            ArrayPool<Half>.Shared.Return(buffer);
        }
    }
}
