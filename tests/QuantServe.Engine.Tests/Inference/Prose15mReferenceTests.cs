using System.Text.Json;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Inference;

/// <summary>prose-15m (Hugging Face, NeoX RoPE, F16) through the engine API against transformers' float32 reference.json.</summary>
public class Prose15mReferenceTests : IClassFixture<Prose15mReferenceTests.Fixture>
{
    public sealed class Fixture : IDisposable
    {
        public LoadedModel Model { get; } = ModelLoader.Load(SharedAssets.Prose15m);
        public IReadOnlyList<Reference> References { get; } = Read();
        public void Dispose() => Model.Dispose();

        private static IReadOnlyList<Reference> Read()
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(SharedAssets.Path("models", "prose-15m", "reference.json")));
            static int[] Ints(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(v => v.GetInt32()).ToArray();
            return doc.RootElement.GetProperty("references").EnumerateArray()
                .Select(r => new Reference(Ints(r, "input_ids"), Ints(r, "last_top5_ids"),
                    r.GetProperty("last_top5_logits").EnumerateArray().Select(v => v.GetSingle()).ToArray(), Ints(r, "greedy_ids")))
                .ToList();
        }
    }

    public sealed record Reference(int[] InputIds, int[] Top5Ids, float[] Top5Logits, int[] GreedyIds);

    private readonly Fixture _f;

    public Prose15mReferenceTests(Fixture fixture) => _f = fixture;

    [Fact]
    public void Forward_AllReferencePromptsInOneBatch_Top5LogitsMatchTransformers()
    {
        var llama = new LlamaModel(_f.Model);
        int vocab = llama.VocabSize, n = _f.References.Count;
        var chunks = _f.References.Select(r => new SequenceChunk(llama.CreateCache(64), r.InputIds)).ToArray();
        var logits = new float[n * vocab];
        llama.Forward(chunks, logits);
        for (int s = 0; s < n; s++)
        {
            var row = logits.AsSpan(s * vocab, vocab).ToArray();
            var top = row.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(5).ToArray();
            Assert.Equal(_f.References[s].Top5Ids, top.Select(p => p.i).ToArray());
            for (int k = 0; k < 5; k++)
                Assert.True(Math.Abs(_f.References[s].Top5Logits[k] - top[k].v) <= 1e-2f, $"prompt {s} top-{k}: {top[k].v} vs {_f.References[s].Top5Logits[k]}");
        }
    }

    [Fact]
    public void Forward_GreedyReferencePromptsDecodedTogether_Match48TransformersIds()
    {
        // All prompts are prefilled in one batch and then decoded in lock-step, one token per sequence per forward pass.
        // transformers' generate stops only at EOS (id 2); the references run the full 48 tokens (BOS included among them).
        var llama = new LlamaModel(_f.Model);
        int vocab = llama.VocabSize, n = _f.References.Count;
        var caches = _f.References.Select(_ => llama.CreateCache(128)).ToArray();
        var sequences = _f.References.Select(r => r.InputIds.ToList()).ToArray();
        var logits = new float[n * vocab];
        llama.Forward(_f.References.Select((r, s) => new SequenceChunk(caches[s], r.InputIds)).ToArray(), logits);
        int steps = _f.References.Max(r => r.GreedyIds.Length - r.InputIds.Length);
        var chunks = new SequenceChunk[n];
        for (int step = 0; step < steps; step++)
        {
            for (int s = 0; s < n; s++)
            {
                int next = Sampler.ArgMax(logits.AsSpan(s * vocab, vocab));
                sequences[s].Add(next);
                chunks[s] = new SequenceChunk(caches[s], new[] { next });
            }
            llama.Forward(chunks, logits);
        }
        for (int s = 0; s < n; s++)
            Assert.Equal(_f.References[s].GreedyIds, sequences[s].Take(_f.References[s].GreedyIds.Length));
    }

    [Fact]
    public void Generate_FirstReferencePrompt_StreamsTransformersGreedyIds()
    {
        var r = _f.References[0];
        var options = new GenerationOptions { MaxTokens = r.GreedyIds.Length - r.InputIds.Length, Sampling = SamplingOptions.Greedy, IgnoreEos = true, StopTokenIds = [2] };
        var ids = r.InputIds.Concat(new TextGenerator(_f.Model).Generate(r.InputIds, options).Select(t => t.Token)).ToArray();
        Assert.Equal(r.GreedyIds, ids);
    }
}
