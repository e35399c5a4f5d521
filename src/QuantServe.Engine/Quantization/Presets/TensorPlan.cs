using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Presets;

/// <summary>A tensor of the model to write: GGUF name, ggml-order dimensions (columns first) and its source storage type.</summary>
/// <param name="Name">GGUF tensor name (<c>blk.3.attn_v.weight</c>).</param>
/// <param name="Dims">Dimensions, innermost (row width) first, as GGUF stores them.</param>
/// <param name="SourceType">The source's storage type (a ggml type name such as F16, or a QuantServe format name).</param>
/// <param name="SourceGgml">The source's ggml type, when it is one.</param>
public sealed record PlanInput(string Name, long[] Dims, string SourceType, GgmlType? SourceGgml);

/// <summary>What one tensor becomes and why.</summary>
/// <param name="Name">GGUF tensor name.</param>
/// <param name="Dims">ggml-order dimensions.</param>
/// <param name="SourceType">Source storage type name.</param>
/// <param name="Type">The ggml type written.</param>
/// <param name="Rule">Why: <c>preset</c>, <c>llama.cpp rule</c>, <c>fallback</c>, <c>norm/bias (F32)</c>, <c>--tensor-type …</c>.</param>
public sealed record PlannedTensor(string Name, long[] Dims, string SourceType, GgmlType Type, string Rule)
{
    /// <summary>Elements in the tensor.</summary>
    public long Elements => Dims.Aggregate(1L, (a, d) => a * d);

    /// <summary>Bytes of the tensor in <see cref="Type"/>.</summary>
    public long Bytes => GgmlTypeInfo.RowBytes(Type, Dims[0]) * (Elements / Math.Max(1, Dims[0]));
}

/// <summary>Chooses every tensor's type for a preset, llama-quantize's way, then applies the user's rules.</summary>
public static class QuantizationPlan
{
    /// <summary>
    /// The plan for <paramref name="tensors"/> (any order; the result is in llama.cpp's order, which is also the file
    /// order): 1-D tensors (norms, biases) are F32; quantizable matrices get the preset's type adjusted by
    /// <see cref="LlamaTensorTypeRules"/>, then the last matching <paramref name="overrides"/> rule unless the rules had to
    /// fall back for the row width (llama.cpp ignores overrides then too). An override type that cannot hold the row width
    /// throws <see cref="ArgumentException"/>.
    /// </summary>
    public static IReadOnlyList<PlannedTensor> Build(GgufPreset preset, IEnumerable<PlanInput> tensors, int layers, int gqa,
        IReadOnlyList<TensorTypeOverride>? overrides = null, bool hasImatrix = false)
    {
        var ordered = tensors.OrderBy(t => t.Name, LlamaTensorTypeRules.TensorOrder).ToList();
        int wv = ordered.Count(t => t.Name.Contains("attn_v.weight", StringComparison.Ordinal) || t.Name.Contains("attn_qkv.weight", StringComparison.Ordinal));
        bool hasOutput = ordered.Any(t => t.Name == "output.weight");
        var rules = new LlamaTensorTypeRules(preset, layers, gqa, wv, hasOutput, hasImatrix);
        var plan = new List<PlannedTensor>(ordered.Count);
        foreach (var t in ordered)
        {
            if (!LlamaTensorTypeRules.IsQuantizable(t.Name, t.Dims.Length))
            {
                plan.Add(new PlannedTensor(t.Name, t.Dims, t.SourceType, GgmlType.F32, "norm/bias (F32)"));
                continue;
            }
            var (type, fallback) = rules.Choose(t.Name, t.Dims[0]);
            string rule = fallback ? $"fallback (width {t.Dims[0]})" : type == preset.DefaultType ? "preset" : "llama.cpp rule";
            if (!fallback && overrides is not null)
            {
                foreach (var o in overrides)
                {
                    if (!o.Matches(t.Name)) continue;
                    if (o.Type is { } forced)
                    {
                        type = forced;
                        rule = $"--tensor-type {o}";
                    }
                    else
                    {
                        type = t.SourceGgml is { } src && GgufPresets.TensorTypes.Contains(src) ? src
                            : throw new ArgumentException($"tensor '{t.Name}': cannot keep its source type {t.SourceType} in GGUF");
                        rule = $"kept ({o.Pattern})";
                    }
                }
            }
            if (t.Dims[0] % LlamaTensorTypeRules.BlockSize(type) != 0)
                throw new ArgumentException($"tensor '{t.Name}': rows of {t.Dims[0]} elements cannot be stored as {type} (block of {LlamaTensorTypeRules.BlockSize(type)})");
            plan.Add(new PlannedTensor(t.Name, t.Dims, t.SourceType, type, rule));
        }
        return plan;
    }
}
