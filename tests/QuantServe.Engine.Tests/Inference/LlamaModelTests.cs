using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Inference;

public class LlamaModelTests : IDisposable
{
    private readonly LoadedModel _model = ModelLoader.Load(SharedAssets.Stories260K);

    public void Dispose() => _model.Dispose();

    private int[] Prompt(string text) => _model.Tokenizer.Encode(text, addBos: true);

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"logit {i}: {expected[i]} vs {actual[i]}");
    }

    [Fact]
    public void Forward_BatchedPrompt_MatchesTokenByToken()
    {
        var llama = new LlamaModel(_model);
        int vocab = llama.VocabSize;
        var ids = Prompt("Once upon a time, there was a little girl named Lily who loved the park");

        var all = new float[ids.Length * vocab];
        llama.Forward([new SequenceChunk(llama.CreateCache(), ids)], all, logitsForAllPositions: true);

        var cache = llama.CreateCache();
        var one = new float[vocab];
        for (int i = 0; i < ids.Length; i++)
        {
            llama.Forward(cache, ids.AsMemory(i, 1), one);
            AssertClose(one, all.AsSpan(i * vocab, vocab), 1e-4f);
        }
        Assert.Equal(ids.Length, cache.Length);
    }

    [Fact]
    public void Forward_PromptLongerThanMaxBatch_MatchesSinglePiece()
    {
        var big = new LlamaModel(_model, maxBatchTokens: 64);
        var small = new LlamaModel(_model, maxBatchTokens: 5);
        var ids = Prompt("Lily and Ben were playing in the park. They saw a big box and wanted to play with it.");
        var a = new float[big.VocabSize];
        var b = new float[big.VocabSize];
        big.Forward(big.CreateCache(), ids, a);
        small.Forward(small.CreateCache(), ids, b);
        AssertClose(a, b, 1e-4f);
    }

    [Fact]
    public void Forward_TwoSequencesInOneBatch_DecodeSameTokensAsAlone()
    {
        var llama = new LlamaModel(_model);
        int vocab = llama.VocabSize;
        int[][] prompts = [Prompt("Once upon a time"), Prompt("Lily and Ben")];
        const int steps = 40;

        List<int> Alone(int[] prompt)
        {
            var cache = llama.CreateCache();
            var logits = new float[vocab];
            llama.Forward(cache, prompt, logits);
            var result = new List<int>();
            for (int i = 0; i < steps; i++)
            {
                int next = Sampler.ArgMax(logits);
                result.Add(next);
                llama.Forward(cache, new[] { next }, logits);
            }
            return result;
        }

        var caches = new[] { llama.CreateCache(), llama.CreateCache() };
        var batchLogits = new float[2 * vocab];
        llama.Forward([new SequenceChunk(caches[0], prompts[0]), new SequenceChunk(caches[1], prompts[1])], batchLogits);
        var together = new[] { new List<int>(), new List<int>() };
        var next = new int[2][];
        for (int i = 0; i < steps; i++)
        {
            for (int s = 0; s < 2; s++)
            {
                next[s] = [Sampler.ArgMax(batchLogits.AsSpan(s * vocab, vocab))];
                together[s].Add(next[s][0]);
            }
            llama.Forward([new SequenceChunk(caches[0], next[0]), new SequenceChunk(caches[1], next[1])], batchLogits);
        }

        Assert.Equal(Alone(prompts[0]), together[0]);
        Assert.Equal(Alone(prompts[1]), together[1]);
        Assert.NotEqual(together[0], together[1]);
    }

    [Fact]
    public void Forward_DecodeLoopWithSampler_AllocatesNothing()
    {
        var llama = new LlamaModel(_model);
        int vocab = llama.VocabSize;
        var cache = llama.CreateCache();
        var logits = new float[vocab];
        var history = new int[256];
        var prompt = Prompt("Once upon a time");
        prompt.CopyTo(history, 0);
        int length = prompt.Length;
        var sampler = new Sampler(vocab, new SamplingOptions { Temperature = 0.8f, TopK = 40, TopP = 0.9f, RepetitionPenalty = 1.1f, Seed = 7, TopLogprobs = 3 });
        llama.Forward([new SequenceChunk(cache, history.AsMemory(0, length))], logits);

        void Step()
        {
            history[length] = sampler.Sample(logits, history.AsSpan(0, length));
            length++;
            llama.Forward([new SequenceChunk(cache, history.AsMemory(length - 1, 1))], logits);
        }

        for (int i = 0; i < 5; i++) Step(); // warm-up: JIT and first-use scratch
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++) Step();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"decode loop allocated {allocated} bytes over 50 tokens");
    }

    [Fact]
    public void Forward_TokenOutsideVocabulary_ThrowsArgumentException()
    {
        var llama = new LlamaModel(_model);
        var ex = Assert.Throws<ArgumentException>(() => llama.Forward(llama.CreateCache(), new[] { 1, 99999 }, new float[llama.VocabSize]));
        Assert.Contains("99999", ex.Message);
    }

    [Fact]
    public void Forward_BeyondCacheCapacity_ThrowsArgumentException()
    {
        var llama = new LlamaModel(_model);
        var cache = llama.CreateCache(capacity: 4);
        var ex = Assert.Throws<ArgumentException>(() => llama.Forward(cache, new[] { 1, 2, 3, 4, 5 }, new float[llama.VocabSize]));
        Assert.Contains("context", ex.Message);
    }

    [Fact]
    public void Forward_GapAfterCacheEnd_ThrowsArgumentException()
    {
        var llama = new LlamaModel(_model);
        var cache = llama.CreateCache();
        Assert.Throws<ArgumentException>(() => llama.Forward([new SequenceChunk(cache, new[] { 1 }, 3)], new float[llama.VocabSize]));
    }

    /// <summary>prose-15m (32-wide heads: the four-query and transposed-key attention kernels and the pool-spread per-token
    /// steps) over a 70-token prompt in one piece on two threads, against the same tokens decoded one at a time. F16
    /// weights keep activations unquantized, so the two differ only by float summation order.</summary>
    [Fact]
    public void Forward_Prose15mPromptPieceOnTwoThreads_MatchesTokenByToken()
    {
        using var model = ModelLoader.Load(System.IO.Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        using var pool = new QuantServe.Engine.Kernels.Cpu.WorkerPool(2);
        var llama = new LlamaModel(model, 128, pool);
        int vocab = llama.VocabSize;
        var ids = model.Tokenizer.Encode(string.Join(' ', Enumerable.Repeat("In the beginning God created the heaven and the earth.", 12)), addBos: true)[..70];
        var all = new float[ids.Length * vocab];
        llama.Forward([new SequenceChunk(llama.CreateCache(), ids)], all, logitsForAllPositions: true);

        var cache = llama.CreateCache();
        var one = new float[vocab];
        for (int i = 0; i < ids.Length; i++)
        {
            llama.Forward(cache, ids.AsMemory(i, 1), one);
            float scale = 1e-4f * (1 + one.Max(MathF.Abs));
            AssertClose(one, all.AsSpan(i * vocab, vocab), scale);
        }
    }
}
