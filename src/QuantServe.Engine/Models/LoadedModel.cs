using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Models;

/// <summary>Defaults the model's files specify for generation (generation_config.json or GGUF metadata).</summary>
public sealed record GenerationDefaults
{
    /// <summary>Token ids that end generation.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Default sampling temperature, when the model specifies one.</summary>
    public float? Temperature { get; init; }
    /// <summary>Default nucleus probability.</summary>
    public float? TopP { get; init; }
    /// <summary>Default top-k.</summary>
    public int? TopK { get; init; }
}

/// <summary>A model ready for inference: hyper-parameters, weights (views into mapped files), tokenizer and metadata.</summary>
public sealed class LoadedModel : IDisposable
{
    private readonly List<IDisposable> _resources;

    /// <summary>Assembles a model; <paramref name="resources"/> (mapped files, native buffers) are disposed with it.</summary>
    public LoadedModel(string sourcePath, string sourceFormat, ModelConfig config, LlamaWeights weights, Tokenizer tokenizer,
        IEnumerable<IDisposable> resources)
    {
        SourcePath = sourcePath;
        SourceFormat = sourceFormat;
        Config = config;
        Weights = weights;
        Tokenizer = tokenizer;
        _resources = resources.ToList();
    }

    /// <summary>File or folder the model came from.</summary>
    public string SourcePath { get; }

    /// <summary><c>gguf</c>, <c>safetensors</c>, <c>llama2c</c> or <c>quantserve</c> (QuantServe's quantized folder).</summary>
    public string SourceFormat { get; }

    /// <summary>Hyper-parameters.</summary>
    public ModelConfig Config { get; }

    /// <summary>Weights.</summary>
    public LlamaWeights Weights { get; }

    /// <summary>Tokenizer.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>The model's own chat template (Jinja source), if it ships one.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Generation defaults from the model's files.</summary>
    public GenerationDefaults Generation { get; init; } = new();

    /// <summary>Free-form metadata worth showing (GGUF general.*, config.json fields).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>Total number of weights (matrices and norms; the tied head counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long n = Weights.Matrices.Sum(m => (long)m.Rows * m.Cols);
            n += Weights.FinalNorm.Length;
            foreach (var l in Weights.Layers)
                n += l.AttnNorm.Length + l.FfnNorm.Length + (l.Bq?.Length ?? 0) + (l.Bk?.Length ?? 0) + (l.Bv?.Length ?? 0);
            return n;
        }
    }

    /// <summary>Bytes of all weights as stored (matrices in their formats, norms and biases as F32).</summary>
    public long WeightBytes
    {
        get
        {
            long n = Weights.Matrices.Sum(m => m.ByteCount);
            n += Weights.FinalNorm.Length * 4L;
            foreach (var l in Weights.Layers)
                n += 4L * (l.AttnNorm.Length + l.FfnNorm.Length + (l.Bq?.Length ?? 0) + (l.Bk?.Length ?? 0) + (l.Bv?.Length ?? 0));
            return n;
        }
    }

    /// <summary>A short description of the storage precision: the single matrix format, or <c>mixed</c>.</summary>
    public string Precision
    {
        get
        {
            var names = Weights.Matrices.Select(m => m.Format.Name).Distinct().ToList();
            return names.Count == 1 ? names[0] : "mixed";
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var r in _resources) r.Dispose();
        _resources.Clear();
    }
}
