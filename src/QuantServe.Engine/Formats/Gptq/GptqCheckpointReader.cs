using System.Runtime.InteropServices;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Gptq;

/// <summary>
/// Reads the GPTQ-packed linear layers of a Hugging Face checkpoint (<see cref="GptqPacking"/> describes the tensors)
/// into run-time matrices (<see cref="GroupQuantizedMatrix"/>: a one-time repack into QuantServe's int-group layout,
/// with act-order columns sorted by group and the activation permuted instead).
/// </summary>
public static unsafe class GptqCheckpointReader
{
    /// <summary>The linear layers of a Llama block, by their names relative to <c>model.layers.N.</c>.</summary>
    public static readonly IReadOnlyList<string> LinearLayers =
    [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
    ];

    /// <summary>
    /// The matrix of the linear layer <paramref name="prefix"/> (<c>model.layers.0.self_attn.q_proj</c>) with
    /// <paramref name="outFeatures"/> × <paramref name="inFeatures"/> weights. Throws <see cref="ModelLoadException"/>
    /// naming the file and tensor on a missing tensor, a wrong shape or dtype, or an inconsistent g_idx.
    /// </summary>
    public static WeightMatrix ReadLinear(SafetensorsCheckpoint checkpoint, string prefix, int outFeatures, int inFeatures, GptqQuantizationConfig q)
    {
        int bits = q.Bits;
        int group = q.GroupSize <= 0 || q.GroupSize >= inFeatures ? inFeatures : q.GroupSize;
        int groups = (inFeatures + group - 1) / group;
        if ((long)inFeatures * bits % 32 != 0 || (long)outFeatures * bits % 32 != 0)
            throw new ModelLoadException(checkpoint.Folder, $"{prefix}: {outFeatures} × {inFeatures} cannot be packed in int32 words at {bits} bits");
        var qweight = Tensor(checkpoint, prefix + ".qweight", SafetensorsDType.I32, [inFeatures * bits / 32, outFeatures]);
        var qzeros = Tensor(checkpoint, prefix + ".qzeros", SafetensorsDType.I32, [groups, outFeatures * bits / 32]);
        var scales = Tensor(checkpoint, prefix + ".scales", SafetensorsDType.F16, [groups, outFeatures]);
        var gIdxTensor = checkpoint.Find(prefix + ".g_idx");
        if (gIdxTensor is not null) Check(gIdxTensor, SafetensorsDType.I32, [inFeatures]);
        if (checkpoint.Find(prefix + ".bias") is { } bias)
            throw new ModelLoadException(bias.File.Path, $"tensor '{bias.Name}': biases on Llama linear layers are not supported");

        try
        {
            var codes = GptqPacking.UnpackWeight(Ints(qweight), outFeatures, inFeatures, bits);
            var zeros = GptqPacking.UnpackZeros(Ints(qzeros), outFeatures, groups, bits, q.ZerosMinusOne);
            var halves = MemoryMarshal.Cast<byte, Half>(scales.Bytes);
            var s = new float[outFeatures * groups];
            for (int k = 0; k < groups; k++)
                for (int o = 0; o < outFeatures; o++) s[o * groups + k] = (float)halves[k * outFeatures + o];
            ReadOnlySpan<int> gIdx = gIdxTensor is null ? [] : Ints(gIdxTensor);
            return GroupQuantizedMatrix.Create(prefix + ".weight", bits, group, outFeatures, inFeatures, codes, s, zeros, gIdx);
        }
        catch (ArgumentException e)
        {
            throw new ModelLoadException(qweight.File.Path, $"GPTQ layer '{prefix}': {e.Message}", e);
        }
    }

    private static ReadOnlySpan<int> Ints(SafetensorsTensorInfo t) => MemoryMarshal.Cast<byte, int>(t.Bytes);

    private static SafetensorsTensorInfo Tensor(SafetensorsCheckpoint checkpoint, string name, SafetensorsDType dtype, long[] shape)
    {
        var t = checkpoint.Find(name)
            ?? throw new ModelLoadException(checkpoint.Folder, $"GPTQ tensor '{name}' (shape {SafetensorsTensorInfo.FormatShape(shape)}) is missing from the safetensors files");
        Check(t, dtype, shape);
        return t;
    }

    private static void Check(SafetensorsTensorInfo t, SafetensorsDType dtype, long[] shape)
    {
        if (t.DType != dtype) throw new ModelLoadException(t.File.Path, $"GPTQ tensor '{t.Name}' has dtype {t.DType}, expected {dtype}");
        if (!t.Shape.SequenceEqual(shape))
            throw new ModelLoadException(t.File.Path, $"GPTQ tensor '{t.Name}' has shape {t.ShapeText}, expected {SafetensorsTensorInfo.FormatShape(shape)}");
    }
}
