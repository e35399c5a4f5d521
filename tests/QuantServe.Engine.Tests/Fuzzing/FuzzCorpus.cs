using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>The real files the mutants start from, read once per test run.</summary>
internal static class FuzzCorpus
{
    private static readonly Lazy<byte[]> ProseQ2KBytes = new(() => File.ReadAllBytes(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q2_K.gguf")));
    private static readonly Lazy<byte[]> StoriesGgufBytes = new(BuildStoriesGguf);

    /// <summary>llama.cpp's own Q2_K quantization of prose-15m (32000-token vocabulary, k-quant tensors).</summary>
    public static byte[] ProseQ2K => ProseQ2KBytes.Value;

    /// <summary>stories260K's real weights (F32) and tok512 vocabulary written as a GGUF by the engine's <see cref="GgufWriter"/>.</summary>
    public static byte[] StoriesGguf => StoriesGgufBytes.Value;

    public static string StoriesCheckpoint => Path.Combine(SharedAssets.Stories260K, "stories260K.bin");
    public static string StoriesTokenizer => Path.Combine(SharedAssets.Stories260K, "tok512.bin");

    /// <summary>Pieces and scores of a llama2.c tokenizer file (test-side reader, independent of the engine's).</summary>
    public static (string[] Pieces, float[] Scores) ReadLlama2cVocab(byte[] f, int n)
    {
        var pieces = new string[n];
        var scores = new float[n];
        int p = 4;
        for (int i = 0; i < n; i++)
        {
            scores[i] = BitConverter.ToSingle(f, p);
            int len = BinaryPrimitives.ReadInt32LittleEndian(f.AsSpan(p + 4));
            pieces[i] = Encoding.UTF8.GetString(f, p + 8, len);
            p += 8 + len;
        }
        return (pieces, scores);
    }

    private static unsafe byte[] BuildStoriesGguf()
    {
        using var model = Llama2cModelLoader.Load(SharedAssets.Stories260K);
        var c = model.Config;
        var (pieces, scores) = ReadLlama2cVocab(File.ReadAllBytes(StoriesTokenizer), c.VocabSize);
        pieces[1] = "<s>";
        pieces[2] = "</s>";
        var m = new GgufMetadata();
        m.Set("general.architecture", GgufValue.FromString("llama"));
        m.Set("general.name", GgufValue.FromString("stories260K"));
        m.Set("general.alignment", GgufValue.FromUInt32(32));
        m.Set("llama.context_length", GgufValue.FromUInt32((uint)c.ContextLength));
        m.Set("llama.embedding_length", GgufValue.FromUInt32((uint)c.Dim));
        m.Set("llama.feed_forward_length", GgufValue.FromUInt32((uint)c.HiddenDim));
        m.Set("llama.block_count", GgufValue.FromUInt32((uint)c.Layers));
        m.Set("llama.attention.head_count", GgufValue.FromUInt32((uint)c.Heads));
        m.Set("llama.attention.head_count_kv", GgufValue.FromUInt32((uint)c.KvHeads));
        m.Set("llama.rope.dimension_count", GgufValue.FromUInt32((uint)c.HeadDim));
        m.Set("llama.attention.layer_norm_rms_epsilon", GgufValue.FromFloat32(c.NormEps));
        m.Set("general.file_type", GgufValue.FromUInt32(0));
        m.Set("tokenizer.ggml.model", GgufValue.FromString("llama"));
        m.Set("tokenizer.ggml.tokens", GgufValue.FromArray(pieces.Select(p => p.Replace(' ', '\u2581'))));
        m.Set("tokenizer.ggml.scores", GgufValue.FromArray(scores));
        m.Set("tokenizer.ggml.token_type", GgufValue.FromArray(Enumerable.Range(0, c.VocabSize)
            .Select(i => i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1).ToArray()));
        m.Set("tokenizer.ggml.bos_token_id", GgufValue.FromUInt32(1));
        m.Set("tokenizer.ggml.eos_token_id", GgufValue.FromUInt32(2));
        m.Set("tokenizer.ggml.unknown_token_id", GgufValue.FromUInt32(0));
        var w = new GgufWriter(m);
        void Matrix(string name, WeightMatrix x) =>
            w.AddTensor(name, [x.Cols, x.Rows], GgmlType.F32, new ReadOnlySpan<byte>(x.Data, checked((int)x.ByteCount)).ToArray());
        void Vector(string name, float[] v) => w.AddTensor(name, [v.Length], GgmlType.F32, MemoryMarshal.AsBytes(v.AsSpan()).ToArray());
        Matrix("token_embd.weight", model.Weights.TokenEmbedding);
        for (int l = 0; l < c.Layers; l++)
        {
            var x = model.Weights.Layers[l];
            Vector($"blk.{l}.attn_norm.weight", x.AttnNorm);
            Matrix($"blk.{l}.attn_q.weight", x.Wq);
            Matrix($"blk.{l}.attn_k.weight", x.Wk);
            Matrix($"blk.{l}.attn_v.weight", x.Wv);
            Matrix($"blk.{l}.attn_output.weight", x.Wo);
            Vector($"blk.{l}.ffn_norm.weight", x.FfnNorm);
            Matrix($"blk.{l}.ffn_gate.weight", x.Gate);
            Matrix($"blk.{l}.ffn_up.weight", x.Up);
            Matrix($"blk.{l}.ffn_down.weight", x.Down);
        }
        Vector("output_norm.weight", model.Weights.FinalNorm);
        using var stream = new MemoryStream();
        w.WriteTo(stream);
        return stream.ToArray();
    }
}
