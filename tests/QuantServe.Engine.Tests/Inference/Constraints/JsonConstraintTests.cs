using System.Diagnostics;
using System.Text.Json;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Inference.Constraints;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Inference.Constraints;

public class JsonConstraintTests(ITestOutputHelper output)
{
    private static readonly Lazy<SentencePieceBpeTokenizer> Tok512 =
        new(() => Llama2cTokenizerFile.Read(SharedAssets.Path("models", "stories260K", "tok512.bin"), 512));

    private static readonly Lazy<SentencePieceBpeTokenizer> Tok32k =
        new(() => Llama2cTokenizerFile.Read(SharedAssets.Path("tokenizers", "llama-32k.bin"), 32000));

    private static int PromptEnd(Tokenizer tok) => tok.Encode("Answer in JSON:", addBos: true)[^1];

    /// <summary>A "model" whose logits are seeded noise: samples from softmax over the masked logits.</summary>
    private static (byte[] Bytes, int ContentTokens, bool Finished) Generate(Tokenizer tok, int seed, int budget, int previous,
        int maxWhitespaceRun = 2, Action<JsonConstraint>? eachStep = null)
    {
        var c = new JsonConstraint(tok, previousToken: previous, maxWhitespaceRun: maxWhitespaceRun);
        var rng = new Random(seed);
        var logits = new float[tok.VocabSize];
        var bytes = new List<byte>();
        int prev = previous, content = 0;
        for (int step = 0; step <= budget; step++)
        {
            eachStep?.Invoke(c);
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(rng.NextDouble() * 8 - 4);
            int allowed = c.ApplyToLogits(logits, budget - content);
            Assert.True(allowed > 0, $"no token allowed at step {step}");
            int t = Sample(logits, rng);
            c.Accept(t);
            if (c.IsFinished) break;
            bytes.AddRange(tok.TokenBytes(t, prev).ToArray());
            prev = t;
            content++;
        }
        return (bytes.ToArray(), content, c.IsFinished);
    }

    private static int Sample(float[] logits, Random rng)
    {
        float max = logits.Max();
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        double r = rng.NextDouble() * sum;
        for (int i = 0; i < logits.Length; i++)
        {
            r -= Math.Exp(logits[i] - max);
            if (r <= 0 && !float.IsNegativeInfinity(logits[i])) return i;
        }
        return Array.FindLastIndex(logits, l => !float.IsNegativeInfinity(l));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(40)]
    [InlineData(200)]
    public void Generate_RandomLogitsWithBudget_AlwaysYieldsParsableObject(int budget)
    {
        var tok = Tok512.Value;
        for (int seed = 0; seed < 20; seed++)
        {
            int previous = seed % 2 == 0 ? -1 : PromptEnd(tok);
            var (bytes, content, finished) = Generate(tok, seed, budget, previous);
            Assert.True(finished, $"seed {seed}: no EOS after {content} tokens");
            Assert.True(content <= budget);
            using var doc = JsonDocument.Parse(bytes);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        }
    }

    [Fact]
    public void ComputeMask_Tok512DuringGeneration_MatchesPerTokenCheck()
    {
        var tok = Tok512.Value;
        var mask = new bool[tok.VocabSize];
        int checkedSteps = 0;
        for (int seed = 0; seed < 4; seed++)
        {
            Generate(tok, 100 + seed, 120, seed % 2 == 0 ? -1 : PromptEnd(tok), maxWhitespaceRun: 3, eachStep: c =>
            {
                c.ComputeMask(mask);
                for (int t = 0; t < tok.VocabSize; t++) Assert.Equal(c.IsAllowed(t), mask[t]);
                checkedSteps++;
            });
        }
        Assert.True(checkedSteps > 20);
    }

    [Fact]
    public void ComputeMask_Llama32kDuringGeneration_MatchesPerTokenCheck()
    {
        var tok = Tok32k.Value;
        var mask = new bool[tok.VocabSize];
        int steps = 0;
        Generate(tok, 7, 25, PromptEnd(tok), maxWhitespaceRun: 2, eachStep: c =>
        {
            int n = c.ComputeMask(mask);
            int expected = 0;
            for (int t = 0; t < tok.VocabSize; t++)
            {
                bool ok = c.IsAllowed(t);
                Assert.Equal(ok, mask[t]);
                if (ok) expected++;
            }
            Assert.Equal(expected, n);
            steps++;
        });
        Assert.True(steps >= 2);
    }

    [Fact]
    public void ComputeMask_EosOnlyOnceComplete_ThenNothing()
    {
        var tok = Tok512.Value;
        int Byte(char ch) => tok.TokenId($"<0x{(int)ch:X2}>");
        var c = new JsonConstraint(tok, previousToken: PromptEnd(tok));
        var mask = new bool[tok.VocabSize];
        c.ComputeMask(mask);
        Assert.False(mask[tok.EosId]);
        Assert.True(mask[Byte('{')]);
        Assert.False(mask[Byte('[')]);
        c.Accept(Byte('{'));
        c.ComputeMask(mask);
        Assert.False(mask[tok.EosId]);
        c.Accept(Byte('}'));
        Assert.True(c.IsComplete);
        Assert.Equal(1, c.ComputeMask(mask));
        Assert.True(mask[tok.EosId]);
        c.Accept(tok.EosId);
        Assert.True(c.IsFinished);
        Assert.Equal(0, c.ComputeMask(mask));
    }

    [Fact]
    public void ComputeMask_WhitespaceRunAtLimit_DisallowsMoreWhitespace()
    {
        var tok = Tok512.Value;
        int Byte(char ch) => tok.TokenId($"<0x{(int)ch:X2}>");
        var c = new JsonConstraint(tok, previousToken: PromptEnd(tok), maxWhitespaceRun: 2);
        c.Accept(Byte('{'));
        c.Accept(Byte(' '));
        c.Accept(Byte('\n'));
        var mask = new bool[tok.VocabSize];
        c.ComputeMask(mask);
        for (int t = 0; t < tok.VocabSize; t++)
        {
            var b = tok.TokenBytes(t, Byte('\n'));
            if (b.Length > 0 && b[0] is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r') Assert.False(mask[t], tok.TokenText(t));
        }
        Assert.True(mask[Byte('"')]);
        Assert.True(mask[Byte('}')]);
    }

    [Fact]
    public void Accept_TokenOutsideMask_Throws()
    {
        var tok = Tok512.Value;
        var c = new JsonConstraint(tok, previousToken: PromptEnd(tok));
        var e = Assert.Throws<InvalidOperationException>(() => c.Accept(tok.TokenId("<0x5B>"))); // '[' at top level
        Assert.Contains("not allowed", e.Message);
        Assert.Throws<InvalidOperationException>(() => c.Accept(tok.EosId));
    }

    [Fact]
    public void ApplyToLogits_DisallowedTokens_SetToNegativeInfinity()
    {
        var tok = Tok512.Value;
        var c = new JsonConstraint(tok, previousToken: PromptEnd(tok));
        var logits = Enumerable.Range(0, tok.VocabSize).Select(i => (float)i).ToArray();
        int n = c.ApplyToLogits(logits);
        Assert.Equal(n, logits.Count(float.IsFinite));
        for (int t = 0; t < tok.VocabSize; t++)
            Assert.Equal(c.LastMask[t] ? t : float.NegativeInfinity, logits[t]);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void ComputeMask_Llama32kVocab_PerStepTime()
    {
        var tok = Tok32k.Value;
        var sw = Stopwatch.StartNew();
        var trie = TokenByteTrie.For(tok);
        output.WriteLine($"trie build: {sw.Elapsed.TotalMilliseconds:F1} ms, {trie.NodeCount} nodes, longest token {trie.MaxTokenBytes} bytes, {trie.OtherTokens.Length} tokens not plain string content");
        var mask = new bool[tok.VocabSize];
        foreach (var (label, prefix) in new[] { ("after '{'", "{"), ("inside a string", "{\"na"), ("after ':'", "{\"a\":"), ("in a number", "{\"a\":12") })
        {
            var c = new JsonConstraint(tok, previousToken: PromptEnd(tok));
            foreach (char ch in prefix) c.Accept(tok.TokenId($"<0x{(int)ch:X2}>"));
            int n = c.ComputeMask(mask);
            for (int i = 0; i < 300; i++) c.ComputeMask(mask); // let tiered JIT optimize before timing
            const int reps = 200;
            var times = new double[reps];
            for (int i = 0; i < reps; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                c.ComputeMask(mask);
                times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            Array.Sort(times); // the machine is shared: min and median resist interference better than the mean
            output.WriteLine($"{label}: min {times[0]:F3} ms, median {times[reps / 2]:F3} ms per mask, {n} of {tok.VocabSize} tokens allowed");
            Assert.True(n > 0);
        }
    }
}
