using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Gptq;

/// <summary>
/// Writes a GPTQ-quantized model as a Hugging Face GPTQ checkpoint folder: <c>model.safetensors</c> with each block
/// linear layer as <c>qweight</c>/<c>qzeros</c>/<c>scales</c>/<c>g_idx</c> (<see cref="GptqPacking"/>, v1 zero
/// convention), the embedding (and an untied head) in the source's float type (F16 unless the source is F32), norms as
/// F32; config.json copied from the source with <c>quantization_config</c> added; the tokenizer files copied. Everything
/// is written into a temporary folder beside the output that replaces it only when complete.
/// </summary>
public static unsafe class GptqCheckpointWriter
{
    private static readonly (string Gguf, string Hf)[] Names =
    [
        ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
        ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"),
    ];

    private static readonly string[] CopiedFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json", "tokenizer.model"];

    /// <summary>Whether a model can be written by <see cref="Write"/>: only Hugging Face sources, whose config.json and tokenizer are reused.</summary>
    public static void CheckSource(LoadedModel source)
    {
        if (source.SourceFormat != "safetensors" || !File.Exists(Path.Combine(source.SourcePath, "config.json")))
            throw new NotSupportedException($"GPTQ checkpoints are written from Hugging Face models (config.json + safetensors); {source.SourcePath} is a {source.SourceFormat} model");
        if (!File.Exists(Path.Combine(source.SourcePath, "tokenizer.json")))
            throw new ModelLoadException(source.SourcePath, "no tokenizer.json to copy beside the GPTQ checkpoint");
    }

    /// <summary>
    /// Writes <paramref name="result"/> (matrices by GGUF name, <c>blk.N.attn_q.weight</c> …) with the non-linear tensors of
    /// <paramref name="source"/> into the folder <paramref name="output"/>; returns the bytes of model.safetensors.
    /// </summary>
    public static long Write(LoadedModel source, GptqModelResult result, GptqOptions options, string output, CancellationToken cancellation = default)
    {
        CheckSource(source);
        var c = source.Config;
        var q = new GptqQuantizationConfig
        {
            Bits = options.Bits, GroupSize = options.GroupSize, DescAct = options.ActOrder, Symmetric = options.Symmetric, CheckpointFormat = "gptq",
        };
        using var staged = new StagedFolder(output);
        string temp = staged.Path;
        var w = source.Weights;
        var writer = new SafetensorsWriter();
        writer.Metadata["format"] = "pt";
        writer.Metadata["quantization"] = "gptq";
        AddFloat(writer, HuggingFaceTensorLayout.Embedding, w.TokenEmbedding);
        for (int l = 0; l < c.Layers; l++)
        {
            var lw = w.Layers[l];
            writer.Add(HuggingFaceTensorLayout.Layer(l, "input_layernorm.weight"), [lw.AttnNorm.Length], lw.AttnNorm);
            writer.Add(HuggingFaceTensorLayout.Layer(l, "post_attention_layernorm.weight"), [lw.FfnNorm.Length], lw.FfnNorm);
            if (lw.Bq != null) writer.Add(HuggingFaceTensorLayout.Layer(l, "self_attn.q_proj.bias"), [lw.Bq.Length], lw.Bq);
            if (lw.Bk != null) writer.Add(HuggingFaceTensorLayout.Layer(l, "self_attn.k_proj.bias"), [lw.Bk.Length], lw.Bk);
            if (lw.Bv != null) writer.Add(HuggingFaceTensorLayout.Layer(l, "self_attn.v_proj.bias"), [lw.Bv.Length], lw.Bv);
            foreach (var (gguf, hf) in Names)
            {
                string key = $"blk.{l}.{gguf}.weight";
                var m = result.Matrices.TryGetValue(key, out var r) ? r : throw new ArgumentException($"no GPTQ result for {key}", nameof(result));
                AddLinear(writer, HuggingFaceTensorLayout.Layer(l, hf), m, q.ZerosMinusOne);
            }
        }
        writer.Add(HuggingFaceTensorLayout.FinalNorm, [w.FinalNorm.Length], w.FinalNorm);
        if (!c.TiedEmbeddings) AddFloat(writer, HuggingFaceTensorLayout.Head, w.Output);
        cancellation.ThrowIfCancellationRequested();
        string weightsPath = Path.Combine(temp, SafetensorsCheckpoint.SingleFileName);
        writer.Write(weightsPath);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source.SourcePath, "config.json")))!.AsObject();
        config["quantization_config"] = JsonSerializer.SerializeToNode(q.ToJson());
        config["torch_dtype"] = "float16";
        File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var name in CopiedFiles)
        {
            string f = Path.Combine(source.SourcePath, name);
            if (File.Exists(f)) File.Copy(f, Path.Combine(temp, name));
        }
        cancellation.ThrowIfCancellationRequested();
        long bytes = new FileInfo(weightsPath).Length;
        // Any folder at the destination is replaced, as before this writer shared StagedFolder.
        staged.Commit(_ => true, "a model folder");
        return bytes;
    }

    /// <summary>Adds one layer's qweight [in·bits/32, out], qzeros [groups, out·bits/32], scales fp16 [groups, out] and g_idx [in].</summary>
    public static void AddLinear(SafetensorsWriter writer, string prefix, GptqResult m, bool zerosMinusOne)
    {
        int bits = m.Options.Bits, rows = m.Rows, cols = m.Cols, groups = m.Groups;
        var qweight = GptqPacking.PackWeight(m.Q, rows, cols, bits);
        var qzeros = GptqPacking.PackZeros(m.Zeros, rows, groups, bits, zerosMinusOne);
        var scales = new Half[groups * rows];
        for (int o = 0; o < rows; o++)
            for (int k = 0; k < groups; k++) scales[k * rows + o] = (Half)m.Scales[o * groups + k];
        writer.Add(prefix + ".qweight", SafetensorsDType.I32, [cols * bits / 32, rows], MemoryMarshal.AsBytes(qweight.AsSpan()).ToArray());
        writer.Add(prefix + ".qzeros", SafetensorsDType.I32, [groups, rows * bits / 32], MemoryMarshal.AsBytes(qzeros.AsSpan()).ToArray());
        writer.Add(prefix + ".scales", SafetensorsDType.F16, [groups, rows], MemoryMarshal.AsBytes(scales.AsSpan()).ToArray());
        writer.Add(prefix + ".g_idx", SafetensorsDType.I32, [cols], MemoryMarshal.AsBytes(m.GIdx.AsSpan()).ToArray());
    }

    private static void AddFloat(SafetensorsWriter writer, string name, WeightMatrix m)
    {
        bool f32 = m.Format.Name == "F32";
        writer.Add(name, f32 ? SafetensorsDType.F32 : SafetensorsDType.F16, [m.Rows, m.Cols], s =>
        {
            var row = new float[m.Cols];
            var bytes = new byte[m.Cols * (f32 ? 4 : 2)];
            for (int r = 0; r < m.Rows; r++)
            {
                m.DequantizeRow(r, row);
                if (f32) MemoryMarshal.AsBytes(row.AsSpan()).CopyTo(bytes);
                else
                {
                    var h = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                    for (int j = 0; j < row.Length; j++) h[j] = (Half)row[j];
                }
                s.Write(bytes);
            }
        });
    }
}
