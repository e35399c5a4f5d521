using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufModelLoaderTests
{
    private static readonly string Q2K = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q2_K.gguf");

    private static int AfterString(byte[] f, string text)
    {
        var needle = new byte[8 + text.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(needle, (ulong)text.Length);
        Encoding.ASCII.GetBytes(text, needle.AsSpan(8));
        int at = f.AsSpan().IndexOf(needle);
        Assert.True(at >= 0, $"'{text}' not found");
        return at + needle.Length;
    }

    private static ModelLoadException LoadDamaged(Action<byte[]> damage)
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Q2K);
        damage(bytes);
        string path = dir.File("damaged.gguf");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains(Path.GetFullPath(path), ex.Message);
        return ex;
    }

    [Fact]
    public void Load_FeedForwardLengthDisagreesWithTensors_ThrowsNamingTensorAndShapes()
    {
        // llama.feed_forward_length: uint32 after the key and its type id.
        var ex = LoadDamaged(f => BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(AfterString(f, "llama.feed_forward_length") + 4), 512));
        Assert.Contains("tensor 'blk.0.ffn_gate.weight' has shape [256, 768], expected [256, 512]", ex.Message);
    }

    [Fact]
    public void Load_KeyTensorNarrowerThanKvHeads_ThrowsNamingTensor()
    {
        // blk.5.attn_k.weight ne[1]: 128 → 64 (its data still lies inside the file).
        var ex = LoadDamaged(f => BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(AfterString(f, "blk.5.attn_k.weight") + 4 + 8), 64));
        Assert.Contains("tensor 'blk.5.attn_k.weight' has shape [256, 64], expected [256, 128]", ex.Message);
    }

    [Fact]
    public void Load_UnsupportedArchitecture_ThrowsNamingIt()
    {
        var ex = LoadDamaged(f => Encoding.ASCII.GetBytes("bloom", f.AsSpan(AfterString(f, "general.architecture") + 4 + 8)));
        Assert.Contains("architecture 'bloom' is not supported", ex.Message);
    }

    [Fact]
    public void Load_MissingTensor_ThrowsNamingIt()
    {
        // Renaming a tensor both removes the expected one and adds one the model does not use.
        var ex = LoadDamaged(f => Encoding.ASCII.GetBytes("blk.6.ffn_up.weighX", f.AsSpan(AfterString(f, "blk.6.ffn_up.weight") - 19)));
        Assert.Contains("tensor 'blk.6.ffn_up.weight' is missing", ex.Message);
    }

    [Fact]
    public void Load_ExtraRopeFreqsTensor_IsRefusedNotIgnored()
    {
        using var dir = new TempDir();
        string path = dir.File("extra.gguf");
        using (var source = GgufFile.Open(Q2K))
        {
            var w = GgufWriter.FromFile(source);
            w.AddTensor("rope_freqs.weight", [16], Tensors.GgmlType.F32, new byte[64]);
            w.Write(path);
        }
        var ex = Assert.Throws<ModelLoadException>(() => GgufModelLoader.Load(path).Dispose());
        Assert.Contains("tensor 'rope_freqs.weight' is not part of a llama model", ex.Message);
    }

    /// <summary>The prose model re-labelled as another architecture: every <c>llama.*</c> key renamed to <c>{arch}.*</c>.</summary>
    internal static GgufWriter Relabel(GgufFile source, string arch)
    {
        var meta = new GgufMetadata();
        foreach (var (key, value) in source.Metadata)
            meta.Set(key.StartsWith("llama.", StringComparison.Ordinal) ? arch + key[5..] : key, value);
        meta.Set("general.architecture", GgufValue.FromString(arch));
        var w = new GgufWriter(meta);
        foreach (var t in source.Tensors) w.AddTensor(t);
        return w;
    }

    [Theory]
    [InlineData("mistral", RopeStyle.Interleaved)]
    [InlineData("qwen2", RopeStyle.Neox)]
    public void ReadConfig_RelabelledArchitecture_UsesItsKeysAndRopeStyle(string arch, RopeStyle rope)
    {
        using var dir = new TempDir();
        string path = dir.File(arch + ".gguf");
        using (var source = GgufFile.Open(Q2K))
        {
            var w = Relabel(source, arch);
            w.Metadata.Set(arch + ".rope.scaling.type", GgufValue.FromString("linear"));
            w.Metadata.Set(arch + ".rope.scaling.factor", GgufValue.FromFloat32(4f));
            w.Metadata.Set(arch + ".attention.key_length", GgufValue.FromUInt32(32));
            w.Write(path);
        }
        using var f = GgufFile.Open(path);
        var c = GgufModelConfig.Read(f);
        Assert.Equal(arch, c.Architecture);
        Assert.Equal(rope, c.Rope);
        Assert.Equal(4f, c.RopeScale);
        Assert.Equal((256, 768, 8, 8, 4, 32), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.HeadDim));
    }

    [Fact]
    public void ReadConfig_YarnRopeScaling_ThrowsNamingIt()
    {
        using var dir = new TempDir();
        string path = dir.File("yarn.gguf");
        using (var source = GgufFile.Open(Q2K))
        {
            var w = GgufWriter.FromFile(source);
            w.Metadata.Set("llama.rope.scaling.type", GgufValue.FromString("yarn"));
            w.Write(path);
        }
        using var f = GgufFile.Open(path);
        var ex = Assert.Throws<ModelLoadException>(() => GgufModelConfig.Read(f));
        Assert.Contains("RoPE scaling type 'yarn' is not supported", ex.Message);
    }
}
