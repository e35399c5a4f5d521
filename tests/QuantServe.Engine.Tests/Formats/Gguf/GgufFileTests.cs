using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufFileTests
{
    public static TheoryData<string> AllFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.EnumerateFiles(SharedAssets.Prose15mGguf, "*.gguf").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(f));
        return data;
    }

    private static string ProseFile(string name) => Path.Combine(SharedAssets.Prose15mGguf, name);

    [Theory]
    [MemberData(nameof(AllFiles))]
    public unsafe void Open_EveryProseGguf_ParsesHeaderMetadataAndTensors(string name)
    {
        using var f = GgufFile.Open(ProseFile(name));
        Assert.Equal(3u, f.Version);
        Assert.Equal(32, f.Alignment);
        Assert.Equal("llama", f.Architecture);
        Assert.Equal(74, f.Tensors.Count);
        Assert.Equal(32000, f.Metadata["tokenizer.ggml.tokens"].Count);
        Assert.Equal(0, f.DataOffset % 32);
        long end = 0;
        foreach (var t in f.Tensors)
        {
            Assert.True(t.Data == f.Tensors[0].Data - f.Tensors[0].Offset + t.Offset);
            Assert.Equal(0, t.Offset % 32);
            Assert.Equal(GgmlTypeInfo.RowBytes(t.Type, t.ElementCount), t.ByteSize);
            end = Math.Max(end, f.DataOffset + t.Offset + t.ByteSize);
        }
        Assert.Equal(f.Length, end); // llama.cpp leaves no slack after the last tensor
        Assert.Same(f.Tensors[0], f.FindTensor(f.Tensors[0].Name));
    }

    [Fact]
    public void Open_ProseF16_TensorShapesAndTypesFollowGgmlOrder()
    {
        using var f = GgufFile.Open(ProseFile("prose-15m-f16.gguf"));
        var emb = f.Tensor("token_embd.weight");
        Assert.Equal([256L, 32000L], emb.Dimensions);
        Assert.Equal(GgmlType.F16, emb.Type);
        Assert.Equal(256, emb.Cols);
        Assert.Equal(32000, emb.Rows);
        Assert.Equal(256L * 32000 * 2, emb.ByteSize);
        var k = f.Tensor("blk.3.attn_k.weight");
        Assert.Equal([256L, 128L], k.Dimensions);
        var down = f.Tensor("blk.7.ffn_down.weight");
        Assert.Equal([768L, 256L], down.Dimensions);
        var norm = f.Tensor("output_norm.weight");
        Assert.Equal([256L], norm.Dimensions);
        Assert.Equal(GgmlType.F32, norm.Type);
        Assert.Null(f.FindTensor("output.weight"));
        var ex = Assert.Throws<ModelLoadException>(() => f.Tensor("output.weight"));
        Assert.Contains("output.weight", ex.Message);
        Assert.Contains(f.Path, ex.Message);
    }

    // The matrix type mix of each file per llama-cpp-reference.md (57 matrices; the 17 norms stay F32).
    [Theory]
    [InlineData("prose-15m-f16.gguf", "f16:57")]
    [InlineData("prose-15m-Q8_0.gguf", "q8_0:57")]
    [InlineData("prose-15m-Q6_K.gguf", "q6_k:57")]
    [InlineData("prose-15m-Q5_K_M.gguf", "q5_k:48 q6_k:9")]
    [InlineData("prose-15m-Q5_1.gguf", "q5_1:56 q6_k:1")]
    [InlineData("prose-15m-Q5_0.gguf", "q5_0:56 q6_k:1")]
    [InlineData("prose-15m-Q4_K_M.gguf", "q4_k:48 q6_k:9")]
    [InlineData("prose-15m-Q4_1.gguf", "q4_1:56 q6_k:1")]
    [InlineData("prose-15m-Q4_0.gguf", "q4_0:56 q6_k:1")]
    [InlineData("prose-15m-Q3_K_M.gguf", "q3_k:32 q4_k:22 q5_k:2 q6_k:1")]
    [InlineData("prose-15m-Q2_K.gguf", "q2_k:32 q3_k:24 q6_k:1")]
    public void Open_ProseFile_MatrixTypesMatchLlamaCppReference(string name, string expected)
    {
        using var f = GgufFile.Open(ProseFile(name));
        var matrices = f.Tensors.Where(t => t.Dimensions.Count == 2).ToList();
        var norms = f.Tensors.Where(t => t.Dimensions.Count == 1).ToList();
        Assert.Equal(57, matrices.Count);
        Assert.Equal(17, norms.Count);
        Assert.All(norms, n => Assert.Equal(GgmlType.F32, n.Type));
        string actual = string.Join(" ", matrices.GroupBy(t => t.Type.ToString().ToLowerInvariant())
            .OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}:{g.Count()}"));
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Metadata_ProseF16_TypedGettersReadValues()
    {
        using var f = GgufFile.Open(ProseFile("prose-15m-f16.gguf"));
        var m = f.Metadata;
        Assert.Equal("prose", m.GetString("general.name"));
        Assert.Equal(256, m.GetInt32("llama.embedding_length"));
        Assert.Equal(GgufValueType.UInt32, m["llama.block_count"].Type);
        Assert.Equal(1e-5, m.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-9);
        Assert.Equal(10000.0, m.GetFloat("llama.rope.freq_base"));
        var tokens = m.GetStringArrayOrNull("tokenizer.ggml.tokens")!;
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal(32000, m.GetFloatArrayOrNull("tokenizer.ggml.scores")!.Length);
        Assert.Equal([2L, 3L, 3L, 6L], m.GetIntegerArrayOrNull("tokenizer.ggml.token_type")![..4]);
        Assert.Null(m.GetStringOrNull("tokenizer.chat_template"));
        Assert.Equal("general.architecture", m.Keys.First());
    }

    [Fact]
    public void Metadata_WrongTypeOrMissingKey_ThrowsNamingFileKeyAndType()
    {
        using var f = GgufFile.Open(ProseFile("prose-15m-f16.gguf"));
        var wrong = Assert.Throws<ModelLoadException>(() => f.Metadata.GetString("llama.block_count"));
        Assert.Contains(f.Path, wrong.Message);
        Assert.Contains("'llama.block_count' has type uint32, expected a string", wrong.Message);
        var missing = Assert.Throws<ModelLoadException>(() => f.Metadata.GetInteger("llama.nothing"));
        Assert.Contains("'llama.nothing' is missing", missing.Message);
        var range = Assert.Throws<ModelLoadException>(() => f.Metadata.GetInt32("llama.block_count", 1, 4));
        Assert.Contains("out of range", range.Message);
        var array = Assert.Throws<ModelLoadException>(() => f.Metadata.GetFloatArrayOrNull("tokenizer.ggml.tokens"));
        Assert.Contains("array[string]", array.Message);
    }
}
