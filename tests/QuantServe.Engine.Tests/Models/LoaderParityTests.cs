using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Models;

/// <summary>The same weights through two loaders: prose-15m's Hugging Face folder (rotate-half RoPE, sharded
/// safetensors, tokenizer.json) and its F16 GGUF (interleaved RoPE rows, embedded vocabulary).</summary>
public class LoaderParityTests
{
    private static readonly string[] Prompts =
    [
        "In the beginning God created",
        "def fibonacci(n):",
        "The quick brown fox jumps over the lazy dog, and then",
    ];

    [Fact]
    public void Forward_HuggingFaceFolderAndF16Gguf_EveryPositionLogitsWithin1e4()
    {
        using var hf = ModelLoader.Load(SharedAssets.Prose15m);
        using var gguf = ModelLoader.Load(SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf"));
        var a = new LlamaModel(hf);
        var b = new LlamaModel(gguf);
        foreach (var prompt in Prompts)
        {
            int[] ids = hf.Tokenizer.Encode(prompt, addBos: true);
            Assert.Equal(ids, gguf.Tokenizer.Encode(prompt, addBos: true));
            var la = new float[ids.Length * a.VocabSize];
            var lb = new float[ids.Length * b.VocabSize];
            a.Forward([new SequenceChunk(a.CreateCache(64), ids)], la, logitsForAllPositions: true);
            b.Forward([new SequenceChunk(b.CreateCache(64), ids)], lb, logitsForAllPositions: true);
            float worst = 0;
            for (int i = 0; i < la.Length; i++) worst = Math.Max(worst, Math.Abs(la[i] - lb[i]));
            Assert.True(worst <= 1e-4f, $"\"{prompt}\": largest logit difference {worst:E3} over {ids.Length} positions exceeds 1e-4");
        }
    }
}
