using QuantServe.Engine.Gpu;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>The prompt attention's tiling (CPU) and, on a GPU, a long prompt through it against the CPU forward pass.</summary>
public class GpuPrefillAttentionTests
{
    [Fact]
    public void Cut_ChunksOfAPiece_GiveTilesOfAtMost64RowsPerRun()
    {
        // Rows: a 70-token prompt of cache A at positions 0..69, one decode token of cache B at 9, 3 tokens of C at 5..7.
        var positions = Enumerable.Range(0, 70).Append(9).Concat([5, 6, 7]).ToArray();
        var caches = Enumerable.Repeat(100UL, 70).Append(200UL).Concat([300UL, 300UL, 300UL]).ToArray();
        var tiles = new int[2 * positions.Length];
        var (count, longest) = GpuPrefillAttention.Cut(positions, caches, positions.Length, tiles);
        Assert.Equal(70, longest);
        Assert.Equal([0, 64, 64, 6, 70, 1, 71, 3], tiles[..(2 * count)]);
    }

    [Fact]
    public void Cut_DecodeStep_IsRunsOfOneToken()
    {
        var tiles = new int[32];
        var (count, longest) = GpuPrefillAttention.Cut([4, 4, 7], [1UL, 2UL, 3UL], 3, tiles);
        Assert.Equal(3, count);
        Assert.Equal(1, longest);
    }

    [GpuFact]
    public void LongPrompt_TiledAttention_MatchesCpuLogitsAndGreedyIds()
    {
        using var backend = CudaBackend.Open(0);
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        using var gpu = new GpuLlamaModel(backend.Device, backend.Kernels, model, 256);
        // Over 64 tokens (two query tiles, GQA 8 heads on 4 KV heads), next to a short prompt in the same piece.
        var prompts = new List<int[]>
        {
            model.Tokenizer.Encode(string.Concat(Enumerable.Repeat("Lily and Ben went to the park to play with a big red ball. ", 4)), addBos: true),
            model.Tokenizer.Encode("Once upon a time", addBos: true),
        };
        Assert.True(prompts[0].Length > 64);
        var r = DeviceComparison.Compare(DeviceComparison.RunCpu(new LlamaModel(model, 256), prompts, 12), DeviceComparison.RunDevice(gpu, prompts, 12), model.Config.VocabSize);
        Assert.True(r.MaxAbsLogitDiff < 1e-3, $"max |Δlogit| {r.MaxAbsLogitDiff}");
        Assert.True(r.GreedyEqual);
    }
}
