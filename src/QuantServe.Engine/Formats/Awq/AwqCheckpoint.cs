using System.Text.Json;
using System.Text.Json.Nodes;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Formats.Awq;

/// <summary>
/// Hugging Face folders in AutoAWQ's GEMM layout (config.json <c>quantization_config</c> = {quant_method: "awq", bits: 4,
/// group_size, zero_point: true, version: "gemm"}; per linear layer <c>qweight</c>, <c>qzeros</c>, <c>scales</c>, see
/// <see cref="AwqGemmLayout"/>): written from an AWQ result and loaded for serving, each quantized linear layer repacked
/// into QuantServe's <c>int4-gG-asym</c> format. Linear layers stored as plain <c>.weight</c> (modules_to_not_convert)
/// load as float matrices.
/// </summary>
public static unsafe class AwqCheckpoint
{
    private static readonly string[] Linears =
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    /// <summary>Whether <paramref name="folder"/> holds a config.json whose quantization_config names quant_method "awq".</summary>
    public static bool IsAwqFolder(string folder)
    {
        string path = Path.Combine(folder, "config.json");
        if (!File.Exists(path)) return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path))?["quantization_config"]?["quant_method"]?.GetValue<string>() is { } m
                && m.Equals("awq", StringComparison.OrdinalIgnoreCase);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return false;
        }
    }

    /// <summary>Loads an AWQ GEMM folder (see the class summary).</summary>
    public static LoadedModel Load(string folder)
    {
        folder = Path.GetFullPath(folder);
        string configPath = Path.Combine(folder, "config.json");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new ModelLoadException(configPath, "config.json is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(configPath, $"config.json is not valid JSON: {e.Message}");
        }
        var (bits, group) = ReadQuantization(configPath, root["quantization_config"] as JsonObject);
        root.Remove("quantization_config");
        var hf = HuggingFaceConfig.Parse(configPath, root.ToJsonString());
        var config = hf.ToModelConfig();

        var checkpoint = SafetensorsCheckpoint.Open(folder);
        try
        {
            bool tied = hf.TieWordEmbeddings || checkpoint.Find(HuggingFaceTensorLayout.Head) is null;
            config = config with { TiedEmbeddings = tied };
            var tokenizer = HfTokenizerJson.Load(folder);
            if (tokenizer.VocabSize > config.VocabSize)
                throw new ModelLoadException(Path.Combine(folder, "tokenizer.json"),
                    $"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocab_size is {config.VocabSize}");
            var weights = MapWeights(checkpoint, config, group);
            var eos = hf.EosTokenIds.Count > 0 ? hf.EosTokenIds : tokenizer.EosId >= 0 ? [tokenizer.EosId] : [];
            var metadata = hf.DisplayMetadata();
            metadata["quantization"] = $"awq gemm int{bits} g{group}";
            return new LoadedModel(folder, "awq", config, weights, tokenizer, checkpoint.DetachFiles())
            {
                ChatTemplate = HuggingFaceChatTemplate.Load(folder),
                Generation = HuggingFaceGenerationConfig.Load(folder, eos),
                Metadata = metadata,
            };
        }
        finally
        {
            checkpoint.Dispose();
        }
    }

    private static (int Bits, int Group) ReadQuantization(string path, JsonObject? q)
    {
        if (q is null) throw new ModelLoadException(path, "quantization_config is not an object");
        int? Int(params string[] names)
        {
            foreach (var n in names)
                if (q[n] is JsonValue v && v.TryGetValue<int>(out int i)) return i;
            return null;
        }
        int bits = Int("bits", "w_bit") ?? throw new ModelLoadException(path, "quantization_config has no bits");
        int group = Int("group_size", "q_group_size") ?? throw new ModelLoadException(path, "quantization_config has no group_size");
        if (bits != 4) throw new ModelLoadException(path, $"AWQ with {bits} bits: the GEMM layout holds 4-bit weights only");
        if (group <= 0) throw new ModelLoadException(path, $"AWQ group_size {group} is not supported (a positive group size is required)");
        if (q["zero_point"] is JsonValue zp && zp.TryGetValue<bool>(out bool zero) && !zero)
            throw new ModelLoadException(path, "AWQ without zero points (zero_point: false) is not supported");
        string version = q["version"] is JsonValue ver && ver.TryGetValue<string>(out var s) ? s : "gemm";
        if (!version.Equals("gemm", StringComparison.OrdinalIgnoreCase))
            throw new ModelLoadException(path, $"AWQ version \"{version}\" is not supported; QuantServe reads the GEMM layout");
        return (bits, group);
    }

    private static LlamaWeights MapWeights(SafetensorsCheckpoint checkpoint, ModelConfig c, int group)
    {
        SafetensorsTensorInfo Tensor(string name) =>
            checkpoint.Find(name) ?? throw new ModelLoadException(checkpoint.Folder, $"tensor '{name}' is missing from the safetensors files");
        float[] Vector(string name, int length)
        {
            var t = Tensor(name);
            if (t.ElementCount != length) throw new ModelLoadException(t.File.Path, $"tensor '{name}' has shape {t.ShapeText}, expected [{length}]");
            return HuggingFaceModelLoader.ToFloats(t);
        }
        WeightMatrix Float(string name, int rows, int cols)
        {
            var m = HuggingFaceModelLoader.AsMatrix(Tensor(name));
            if (m.Rows != rows || m.Cols != cols) throw new ModelLoadException(checkpoint.Folder, $"tensor '{name}' is {m.Rows}x{m.Cols}, expected {rows}x{cols}");
            return m;
        }
        WeightMatrix Linear(int l, int j, int rows, int cols)
        {
            string prefix = HuggingFaceTensorLayout.Layer(l, Linears[j]);
            if (checkpoint.Find(prefix + ".qweight") is null) return Float(prefix + ".weight", rows, cols);
            return LoadLinear(checkpoint, prefix, rows, cols, group);
        }
        int dim = c.Dim, q = c.QDim, kv = c.KvDim, ff = c.HiddenDim;
        var embedding = Float(HuggingFaceTensorLayout.Embedding, c.VocabSize, dim);
        var layers = new LayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string L(string s) => HuggingFaceTensorLayout.Layer(l, s);
            layers[l] = new LayerWeights
            {
                AttnNorm = Vector(L("input_layernorm.weight"), dim),
                Wq = Linear(l, 0, q, dim), Wk = Linear(l, 1, kv, dim), Wv = Linear(l, 2, kv, dim), Wo = Linear(l, 3, dim, q),
                Bq = c.Architecture == "qwen2" && checkpoint.Find(L("self_attn.q_proj.bias")) is not null ? Vector(L("self_attn.q_proj.bias"), q) : null,
                Bk = c.Architecture == "qwen2" && checkpoint.Find(L("self_attn.k_proj.bias")) is not null ? Vector(L("self_attn.k_proj.bias"), kv) : null,
                Bv = c.Architecture == "qwen2" && checkpoint.Find(L("self_attn.v_proj.bias")) is not null ? Vector(L("self_attn.v_proj.bias"), kv) : null,
                FfnNorm = Vector(L("post_attention_layernorm.weight"), dim),
                Gate = Linear(l, 4, ff, dim), Up = Linear(l, 5, ff, dim), Down = Linear(l, 6, dim, ff),
            };
        }
        return new LlamaWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            FinalNorm = Vector(HuggingFaceTensorLayout.FinalNorm, dim),
            Output = c.TiedEmbeddings ? embedding : Float(HuggingFaceTensorLayout.Head, c.VocabSize, dim),
        };
    }

    private static WeightMatrix LoadLinear(SafetensorsCheckpoint checkpoint, string prefix, int rows, int cols, int group)
    {
        var qw = Expect(checkpoint, prefix + ".qweight", SafetensorsDType.I32, cols, rows / 8);
        if (rows % 8 != 0 || cols % group != 0)
            throw new ModelLoadException(qw.File.Path, $"'{prefix}' is {rows}x{cols}: the AWQ GEMM layout needs outputs in multiples of 8 and inputs in whole groups of {group}");
        var qz = Expect(checkpoint, prefix + ".qzeros", SafetensorsDType.I32, cols / group, rows / 8);
        var sc = Expect(checkpoint, prefix + ".scales", SafetensorsDType.F16, cols / group, rows);
        return AwqGemmLayout.ToWeightMatrix(prefix + ".weight",
            new ReadOnlySpan<int>(qw.Pointer, checked((int)qw.ElementCount)),
            new ReadOnlySpan<int>(qz.Pointer, checked((int)qz.ElementCount)),
            new ReadOnlySpan<Half>(sc.Pointer, checked((int)sc.ElementCount)), rows, cols, group);
    }

    private static SafetensorsTensorInfo Expect(SafetensorsCheckpoint checkpoint, string name, SafetensorsDType dtype, long d0, long d1)
    {
        var t = checkpoint.Find(name) ?? throw new ModelLoadException(checkpoint.Folder, $"tensor '{name}' is missing from the safetensors files");
        if (t.DType != dtype) throw new ModelLoadException(t.File.Path, $"tensor '{name}' has dtype {t.DType}, expected {dtype}");
        if (t.Shape.Count != 2 || t.Shape[0] != d0 || t.Shape[1] != d1)
            throw new ModelLoadException(t.File.Path, $"tensor '{name}' has shape {t.ShapeText}, expected [{d0}, {d1}]");
        return t;
    }

    /// <summary>
    /// Writes a model quantized in place by <see cref="AwqModelQuantizer.Quantize"/> (4-bit) as an AWQ GEMM folder:
    /// the embedding (and untied head) in fp16, norms (holding the folded scales) and biases in F32 so they reload
    /// exactly, each linear layer as qweight / qzeros / scales, config.json with quantization_config, and the source's
    /// tokenizer and generation files. Written into a temporary folder beside <paramref name="output"/> that replaces it
    /// only when complete. Returns the bytes of the packed linear layers.
    /// </summary>
    public static long Save(LoadedModel model, AwqModelResult result, string output, CancellationToken cancellation = default)
    {
        if (result.Options.Bits != 4) throw new ArgumentException($"the AWQ GEMM layout holds 4-bit weights; save {result.Options.Bits}-bit AWQ as a QuantServe quantized folder");
        if (model.SourceFormat != "safetensors")
            throw new NotSupportedException($"writing the AWQ GEMM layout needs a Hugging Face source (config.json, tokenizer.json); this model is {model.SourceFormat}");
        var c = model.Config;
        string sourceConfig = Path.Combine(model.SourcePath, "config.json");
        var root = JsonNode.Parse(File.ReadAllText(sourceConfig)) as JsonObject ?? throw new ModelLoadException(sourceConfig, "config.json is not a JSON object");
        root["quantization_config"] = new JsonObject
        {
            ["quant_method"] = "awq",
            ["bits"] = 4,
            ["group_size"] = result.Options.GroupSize,
            ["zero_point"] = true,
            ["version"] = "gemm",
            ["modules_to_not_convert"] = null,
        };
        root["torch_dtype"] = "float16";

        using var staged = new StagedFolder(output);
        string temp = staged.Path;
        var w = model.Weights;
        var writer = new SafetensorsWriter();
        writer.Add(HuggingFaceTensorLayout.Embedding, SafetensorsDType.F16, [w.TokenEmbedding.Rows, w.TokenEmbedding.Cols], Half16(w.TokenEmbedding));
        long packedBytes = 0;
        for (int l = 0; l < c.Layers; l++)
        {
            cancellation.ThrowIfCancellationRequested();
            var lw = w.Layers[l];
            string L(string s) => HuggingFaceTensorLayout.Layer(l, s);
            writer.Add(L("input_layernorm.weight"), [lw.AttnNorm.Length], lw.AttnNorm);
            writer.Add(L("post_attention_layernorm.weight"), [lw.FfnNorm.Length], lw.FfnNorm);
            if (lw.Bq != null) writer.Add(L("self_attn.q_proj.bias"), [lw.Bq.Length], lw.Bq);
            if (lw.Bk != null) writer.Add(L("self_attn.k_proj.bias"), [lw.Bk.Length], lw.Bk);
            if (lw.Bv != null) writer.Add(L("self_attn.v_proj.bias"), [lw.Bv.Length], lw.Bv);
            for (int j = 0; j < 7; j++)
            {
                string key = $"blk.{l}.{AwqModelQuantizer.MatrixNames[j]}.weight";
                var m = result.Matrices.TryGetValue(key, out var found) ? found : throw new ArgumentException($"the AWQ result has no {key}");
                string prefix = L(Linears[j]);
                var qweight = AwqGemmLayout.PackWeights(m);
                var qzeros = AwqGemmLayout.PackZeros(m);
                var scales = AwqGemmLayout.PackScales(m);
                writer.Add(prefix + ".qweight", SafetensorsDType.I32, [m.Cols, m.Rows / 8], Bytes(qweight));
                writer.Add(prefix + ".qzeros", SafetensorsDType.I32, [m.Groups, m.Rows / 8], Bytes(qzeros));
                writer.Add(prefix + ".scales", SafetensorsDType.F16, [m.Groups, m.Rows], Bytes(scales));
                packedBytes += 4L * (qweight.Length + qzeros.Length) + 2L * scales.Length;
            }
        }
        writer.Add(HuggingFaceTensorLayout.FinalNorm, [w.FinalNorm.Length], w.FinalNorm);
        if (!c.TiedEmbeddings) writer.Add(HuggingFaceTensorLayout.Head, SafetensorsDType.F16, [w.Output.Rows, w.Output.Cols], Half16(w.Output));
        writer.Metadata["format"] = "pt";
        writer.Write(Path.Combine(temp, SafetensorsCheckpoint.SingleFileName));
        cancellation.ThrowIfCancellationRequested();
        File.WriteAllText(Path.Combine(temp, "config.json"), root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja" })
        {
            string f = Path.Combine(model.SourcePath, name);
            if (File.Exists(f)) File.Copy(f, Path.Combine(temp, name));
        }
        staged.Commit(IsAwqFolder, "an AWQ model folder");
        return packedBytes;
    }

    private static ReadOnlyMemory<byte> Bytes<T>(T[] values) where T : unmanaged
        => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static ReadOnlyMemory<byte> Half16(WeightMatrix m)
    {
        var bytes = new byte[(long)m.Rows * m.Cols * 2];
        var h = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        var row = new float[m.Cols];
        for (int r = 0; r < m.Rows; r++)
        {
            m.DequantizeRow(r, row);
            for (int j = 0; j < m.Cols; j++) h[r * m.Cols + j] = (Half)row[j];
        }
        return bytes;
    }

}
