using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Presets;

public class QuantizationPlanTests
{
    private static readonly string F16 = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");

    public static TheoryData<string> ReferencePresets => new()
    {
        "Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_1", "Q4_0", "Q3_K_M", "Q2_K",
    };

    private static IReadOnlyList<PlannedTensor> PlanFromF16(string preset, IReadOnlyList<TensorTypeOverride>? overrides = null)
    {
        using var file = GgufFile.Open(F16);
        var inputs = file.Tensors.Select(t => new PlanInput(t.Name, t.Dimensions.ToArray(), t.Type.ToString(), t.Type));
        return QuantizationPlan.Build(GgufPresets.Find(preset), inputs, layers: 8, gqa: 2, overrides);
    }

    [Theory]
    [MemberData(nameof(ReferencePresets))]
    public void Build_ProseF16_MatchesLlamaQuantizeTypesAndOrderForEveryTensor(string preset)
    {
        var plan = PlanFromF16(preset);
        using var reference = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, $"prose-15m-{preset}.gguf"));
        Assert.Equal(reference.Tensors.Select(t => (t.Name, t.Type)), plan.Select(p => (p.Name, p.Type)));
        Assert.Equal(reference.Tensors.Select(t => t.ByteSize), plan.Select(p => p.Bytes));
    }

    [Theory]
    [InlineData("Q3_K_S", "q3_K ×56, q6_K ×1")]
    [InlineData("Q3_K_L", "q3_K ×32, q5_K ×24, q6_K ×1")]
    [InlineData("Q4_K_S", "q4_K ×51, q5_K ×5, q6_K ×1")]
    [InlineData("Q5_K_S", "q5_K ×56, q6_K ×1")]
    public void Build_PresetsWithoutReferenceFile_FollowLlamaCppRules(string preset, string mix)
    {
        var plan = PlanFromF16(preset).Where(p => p.Dims.Length == 2).ToList();
        string actual = string.Join(", ", plan.GroupBy(p => p.Type).OrderBy(g => g.Key.ToString(), StringComparer.OrdinalIgnoreCase)
            .Select(g => $"{g.Key.ToString().ToLowerInvariant().Replace("_k", "_K")} ×{g.Count()}"));
        Assert.Equal(mix, actual);
        if (preset == "Q4_K_S")
        {
            // attn_v of the first four layers and ffn_down of the first eighth (layer 0) get Q5_K.
            Assert.All(Enumerable.Range(0, 8), l => Assert.Equal(l < 4 ? GgmlType.Q5_K : GgmlType.Q4_K, plan.Single(p => p.Name == $"blk.{l}.attn_v.weight").Type));
            Assert.All(Enumerable.Range(0, 8), l => Assert.Equal(l < 1 ? GgmlType.Q5_K : GgmlType.Q4_K, plan.Single(p => p.Name == $"blk.{l}.ffn_down.weight").Type));
        }
    }

    [Fact]
    public void Build_NormsAndNonQuantizablePresets_StayFloat()
    {
        var plan = PlanFromF16("F16");
        Assert.All(plan, p => Assert.Equal(p.Dims.Length == 1 ? GgmlType.F32 : GgmlType.F16, p.Type));
        Assert.All(PlanFromF16("Q4_0").Where(p => p.Name.EndsWith("_norm.weight")), p => Assert.Equal(GgmlType.F32, p.Type));
    }

    [Fact]
    public void Build_UserRules_OverrideThePresetLastMatchWinsAndKeepUsesSourceType()
    {
        var overrides = new[]
        {
            TensorTypeOverride.Parse("attn_v=Q8_0"),
            TensorTypeOverride.Parse(@"blk\.7\.attn_v=Q5_0"),
            TensorTypeOverride.Parse(@"ffn_down=keep"),
        };
        var plan = PlanFromF16("Q4_K_M", overrides);
        for (int l = 0; l < 8; l++)
        {
            var v = plan.Single(p => p.Name == $"blk.{l}.attn_v.weight");
            Assert.Equal(l == 7 ? GgmlType.Q5_0 : GgmlType.Q8_0, v.Type);
            Assert.StartsWith("--tensor-type", v.Rule);
            Assert.Equal(GgmlType.F16, plan.Single(p => p.Name == $"blk.{l}.ffn_down.weight").Type);
            Assert.Equal(GgmlType.Q4_K, plan.Single(p => p.Name == $"blk.{l}.attn_q.weight").Type);
        }
        Assert.Equal(GgmlType.Q6_K, plan.Single(p => p.Name == "token_embd.weight").Type);
    }

    [Fact]
    public void Build_RowsNotDivisibleBy256_FallBackLikeLlamaCpp()
    {
        // A 64-wide model (stories260K's shape): Q4_K → Q5_0, Q6_K → Q8_0, and overrides are ignored for fallbacks.
        var inputs = new[]
        {
            new PlanInput("token_embd.weight", [64, 512], "F32", GgmlType.F32),
            new PlanInput("blk.0.attn_q.weight", [64, 64], "F32", GgmlType.F32),
            new PlanInput("blk.0.attn_v.weight", [64, 32], "F32", GgmlType.F32),
            new PlanInput("blk.0.ffn_down.weight", [172, 64], "F32", GgmlType.F32),
        };
        var plan = QuantizationPlan.Build(GgufPresets.Find("Q4_K_M"), inputs, 1, 2, [TensorTypeOverride.Parse("attn_q=Q8_0")]).ToDictionary(p => p.Name);
        Assert.Equal(GgmlType.Q8_0, plan["token_embd.weight"].Type);
        Assert.Equal(GgmlType.Q5_0, plan["blk.0.attn_q.weight"].Type);
        Assert.StartsWith("fallback", plan["blk.0.attn_q.weight"].Rule);
        Assert.Equal(GgmlType.Q8_0, plan["blk.0.attn_v.weight"].Type);
        Assert.Equal(GgmlType.F16, plan["blk.0.ffn_down.weight"].Type); // 172 fits neither Q6_K nor Q8_0
        var q2 = QuantizationPlan.Build(GgufPresets.Find("Q2_K"), inputs, 1, 2).ToDictionary(p => p.Name);
        Assert.Equal(GgmlType.Q4_0, q2["blk.0.attn_q.weight"].Type);
    }

    [Fact]
    public void UseMoreBits_EightLayers_PicksLlamaCppsLayers()
    {
        Assert.Equal([0, 3, 6, 7], Enumerable.Range(0, 8).Where(l => LlamaTensorTypeRules.UseMoreBits(l, 8)));
        Assert.Equal([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31],
            Enumerable.Range(0, 32).Where(l => LlamaTensorTypeRules.UseMoreBits(l, 32)));
    }

    [Fact]
    public void Build_EightyLayerGqaModel_PromotesAttnVLike70B()
    {
        // Llama-2-70B's shape: 80 layers, 64 heads over 8 kv heads; attn_v rows are 8192 wide, 1024 rows.
        var inputs = Enumerable.Range(0, 80).SelectMany(l => new[]
        {
            new PlanInput($"blk.{l}.attn_v.weight", [8192, 1024], "F16", GgmlType.F16),
            new PlanInput($"blk.{l}.attn_q.weight", [8192, 8192], "F16", GgmlType.F16),
        }).Append(new PlanInput("output.weight", [8192, 32000], "F16", GgmlType.F16));
        var q4km = QuantizationPlan.Build(GgufPresets.Find("Q4_K_M"), inputs, 80, 8).ToDictionary(p => p.Name);
        Assert.Equal(GgmlType.Q6_K, q4km["blk.0.attn_v.weight"].Type);   // use_more_bits layer
        Assert.Equal(GgmlType.Q5_K, q4km["blk.11.attn_v.weight"].Type);  // Q4_K bumped by the 70B rule
        Assert.Equal(GgmlType.Q4_K, q4km["blk.11.attn_q.weight"].Type);
        var q2 = QuantizationPlan.Build(GgufPresets.Find("Q2_K"), inputs, 80, 8).ToDictionary(p => p.Name);
        Assert.Equal(GgmlType.Q5_K, q2["blk.40.attn_v.weight"].Type);    // n_gqa 8 ≥ 4 → Q4_K → 70B → Q5_K
        Assert.Equal(GgmlType.Q2_K, q2["blk.40.attn_q.weight"].Type);
        Assert.Equal(GgmlType.Q6_K, q2["output.weight"].Type);
    }

    [Fact]
    public void Find_UnknownType_ListsValidNames()
    {
        var e = Assert.Throws<ArgumentException>(() => GgufPresets.Find("Q4_K_X"));
        Assert.Contains("'Q4_K_X'", e.Message);
        Assert.Contains("Q4_K_M", e.Message);
        Assert.Contains("Q8_0", e.Message);
        Assert.Equal(15, GgufPresets.Find("q4_k_m").FileType);
        var t = Assert.Throws<ArgumentException>(() => TensorTypeOverride.Parse("attn_v=Q9"));
        Assert.Contains("Q6_K", t.Message);
        Assert.Throws<ArgumentException>(() => TensorTypeOverride.Parse("attn_v"));
        Assert.Throws<ArgumentException>(() => TensorTypeOverride.Parse("attn_v(=Q8_0"));
    }
}
