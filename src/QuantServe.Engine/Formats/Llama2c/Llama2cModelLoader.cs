using System.Runtime.InteropServices;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Llama2c;

/// <summary>
/// Loads a llama2.c legacy checkpoint: seven int32 header fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size — negative when the classifier is separate — and seq_len), then float32 weights in llama2.c's order,
/// including the legacy freq_cis tables (skipped: RoPE is computed). The tokenizer is the <c>tok*.bin</c> file in
/// the same folder. Matrices stay in the memory-mapped file.
/// </summary>
public static unsafe class Llama2cModelLoader
{
    private const int HeaderBytes = 7 * sizeof(int);

    /// <summary>Whether <paramref name="folder"/> looks like a llama2.c model (a checkpoint .bin plus a tok*.bin).</summary>
    public static bool IsLlama2cFolder(string folder) =>
        Directory.Exists(folder) && FindTokenizer(folder) != null && FindCheckpoint(folder) != null;

    /// <summary>Loads from a folder, or from a checkpoint file with its tokenizer beside it.</summary>
    public static LoadedModel Load(string path)
    {
        string checkpoint = Directory.Exists(path)
            ? FindCheckpoint(path) ?? throw new ModelLoadException(path, "no llama2.c checkpoint (.bin not starting with 'tok') in folder")
            : path;
        string folder = Path.GetDirectoryName(Path.GetFullPath(checkpoint))!;
        string tokenizerPath = FindTokenizer(folder)
            ?? throw new ModelLoadException(folder, "no llama2.c tokenizer (a file named tok*.bin) beside the checkpoint");

        var file = MappedFile.Open(checkpoint);
        try
        {
            if (file.Length < HeaderBytes) throw new ModelLoadException(file.Path, $"truncated llama2.c checkpoint: {file.Length} bytes, header needs {HeaderBytes}");
            var header = MemoryMarshal.Cast<byte, int>(file.Span(0, HeaderBytes));
            int dim = header[0], hidden = header[1], layers = header[2], heads = header[3], kvHeads = header[4], vocabRaw = header[5], seqLen = header[6];
            bool shared = vocabRaw > 0;
            // int.MinValue has no positive counterpart (Math.Abs would throw OverflowException).
            if (vocabRaw == int.MinValue) throw new ModelLoadException(file.Path, $"implausible header: vocab_size={vocabRaw}");
            int vocab = Math.Abs(vocabRaw);
            if (heads <= 0 || dim <= 0 || dim % heads != 0)
                throw new ModelLoadException(file.Path, $"implausible header: dim={dim}, n_heads={heads}");
            var config = new ModelConfig
            {
                Architecture = "llama",
                Dim = dim, HiddenDim = hidden, Layers = layers, Heads = heads, KvHeads = kvHeads,
                HeadDim = dim / heads, VocabSize = vocab, ContextLength = seqLen,
                RopeTheta = 10000f, Rope = RopeStyle.Interleaved, NormEps = 1e-5f, TiedEmbeddings = shared,
            };
            config.Validate(file.Path);

            long headSize = config.HeadDim, kvDim = config.KvDim;
            long expected = HeaderBytes + 4L * (
                (long)vocab * dim + layers * (long)dim + layers * (long)dim * dim + 2L * layers * dim * kvDim + layers * (long)dim * dim
                + layers * (long)dim + 3L * layers * dim * hidden + dim + seqLen * headSize + (shared ? 0 : (long)vocab * dim));
            if (file.Length < expected)
                throw new ModelLoadException(file.Path, $"truncated llama2.c checkpoint: {file.Length} bytes, the header's shape needs {expected}");
            if (file.Length > expected)
                throw new ModelLoadException(file.Path, $"llama2.c checkpoint has {file.Length - expected} bytes more than its header's shape needs (not a legacy-format checkpoint?)");

            var f32 = TensorFormats.ForGgml(GgmlType.F32) ?? throw new InvalidOperationException("F32 format is not registered");
            long offset = HeaderBytes;
            WeightMatrix Matrix(string name, int rows, int cols)
            {
                var m = new WeightMatrix(name, f32, rows, cols, file.Pointer + offset);
                offset += 4L * rows * cols;
                return m;
            }
            WeightMatrix[] Stack(string name, int rows, int cols) =>
                Enumerable.Range(0, layers).Select(l => Matrix($"layers.{l}.{name}", rows, cols)).ToArray();
            float[][] Vectors(int count, int length)
            {
                var result = new float[count][];
                for (int i = 0; i < count; i++)
                {
                    result[i] = MemoryMarshal.Cast<byte, float>(file.Span(offset, 4 * length)).ToArray();
                    offset += 4L * length;
                }
                return result;
            }

            var embedding = Matrix("tok_embeddings", vocab, dim);
            var attnNorm = Vectors(layers, dim);
            var wq = Stack("attention.wq", config.QDim, dim);
            var wk = Stack("attention.wk", config.KvDim, dim);
            var wv = Stack("attention.wv", config.KvDim, dim);
            var wo = Stack("attention.wo", dim, config.QDim);
            var ffnNorm = Vectors(layers, dim);
            var w1 = Stack("feed_forward.w1", hidden, dim);
            var w2 = Stack("feed_forward.w2", dim, hidden);
            var w3 = Stack("feed_forward.w3", hidden, dim);
            var finalNorm = Vectors(1, dim)[0];
            offset += 4L * seqLen * headSize; // freq_cis_real and freq_cis_imag: seq_len × head_size/2 each
            var output = shared ? embedding : Matrix("output", vocab, dim);

            var weights = new LlamaWeights
            {
                TokenEmbedding = embedding,
                FinalNorm = finalNorm,
                Output = output,
                Layers = Enumerable.Range(0, layers).Select(l => new LayerWeights
                {
                    AttnNorm = attnNorm[l], Wq = wq[l], Wk = wk[l], Wv = wv[l], Wo = wo[l],
                    FfnNorm = ffnNorm[l], Gate = w1[l], Down = w2[l], Up = w3[l],
                }).ToArray(),
            };
            var tokenizer = Llama2cTokenizerFile.Read(tokenizerPath, vocab);
            return new LoadedModel(file.Path, "llama2c", config, weights, tokenizer, [file])
            {
                Generation = new GenerationDefaults { StopTokenIds = [tokenizer.EosId] },
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static string? FindTokenizer(string folder) =>
        Directory.EnumerateFiles(folder, "tok*.bin").Order(StringComparer.Ordinal).FirstOrDefault();

    private static string? FindCheckpoint(string folder) =>
        Directory.EnumerateFiles(folder, "*.bin")
            .Where(f => !Path.GetFileName(f).StartsWith("tok", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).FirstOrDefault();
}
