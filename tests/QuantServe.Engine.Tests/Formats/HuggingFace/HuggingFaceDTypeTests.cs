using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Json;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

/// <summary>prose-15m re-saved in F32 and BF16 (as checkpoints of those dtypes are published) and loaded end to end.</summary>
public class HuggingFaceDTypeTests
{
    /// <summary>Copies prose-15m's tensors into <paramref name="dtype"/> (F16 → F32 exactly; F32 → BF16 rounding to nearest even).</summary>
    private static TempModelFolder Convert(SafetensorsDType dtype)
    {
        var temp = new TempModelFolder(SharedAssets.Prose15m);
        File.Delete(temp.Path(SafetensorsCheckpoint.IndexFileName));
        foreach (var shard in Directory.GetFiles(temp.Dir, "model-*.safetensors")) File.Delete(shard);
        using var source = SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        var writer = new SafetensorsWriter();
        foreach (var t in source.Tensors.Values)
        {
            var floats = new float[t.ElementCount];
            TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(t.Bytes), floats);
            if (dtype == SafetensorsDType.F32)
            {
                writer.Add(t.Name, t.Shape, floats);
                continue;
            }
            var bf16 = new ushort[floats.Length];
            for (int i = 0; i < floats.Length; i++) bf16[i] = ToBf16(floats[i]);
            writer.Add(t.Name, SafetensorsDType.BF16, t.Shape, MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray());
        }
        writer.WriteCheckpoint(temp.Dir, maxShardBytes: 40_000_000);
        return temp;
    }

    private static ushort ToBf16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    private static (int[] Ids, int[] Top5, float[] Top5Logits) FirstReference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedAssets.Path("models", "prose-15m", "reference.json")));
        var r = doc.RootElement.GetProperty("references")[0];
        return (r.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("last_top5_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("last_top5_logits").EnumerateArray().Select(e => e.GetSingle()).ToArray());
    }

    [Theory]
    [InlineData(SafetensorsDType.F32, 1e-3f)]
    [InlineData(SafetensorsDType.BF16, 0.05f)]  // measured ≤ 0.009
    public void Load_Prose15mResavedInDType_LogitsMatchReference(SafetensorsDType dtype, float tolerance)
    {
        using var temp = Convert(dtype);
        using var model = ModelLoader.Load(temp.Dir);
        Assert.Equal(dtype.ToString(), model.Precision);
        Assert.Equal(14487808, model.ParameterCount);

        var (ids, top5, top5Logits) = FirstReference();
        var llama = new LlamaModel(model);
        var logits = new float[llama.VocabSize];
        llama.Forward(llama.CreateCache(), ids, logits);
        Assert.Equal(top5[0], Array.IndexOf(logits, logits.Max()));
        for (int i = 0; i < 5; i++)
            Assert.True(Math.Abs(logits[top5[i]] - top5Logits[i]) <= tolerance, $"{dtype}: logit of {top5[i]} is {logits[top5[i]]}, reference {top5Logits[i]}");
    }
}
