using System.Diagnostics;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.HuggingFace;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Tokenization;

public class TokenizerPerformanceTests(ITestOutputHelper output)
{
    private static Tokenizer[] All() =>
    [
        ProseTokenizers.Hf.Tokenizer,
        ProseTokenizers.SentencePiece,
        HfTokenizerJson.FromJson(ByteLevelVocabulary.Json("llama3")).Tokenizer,
    ];

    [Fact]
    public void Encode_100KbLineWithoutSpaces_FinishesQuicklyAndRoundTrips()
    {
        // One "word" of 100 K characters: merging must not be quadratic in the word length.
        var random = new Random(7);
        string letters = new(Enumerable.Range(0, 100_000).Select(_ => (char)('a' + random.Next(26))).ToArray());
        string repeated = new('a', 100_000);
        foreach (var tok in All())
            foreach (var text in new[] { letters, repeated })
            {
                // CPU time, as the shared machines are oversubscribed; quadratic merging would take minutes here.
                var process = Process.GetCurrentProcess();
                var cpu = process.TotalProcessorTime;
                var ids = tok.Encode(text, addBos: false);
                process.Refresh();
                var used = process.TotalProcessorTime - cpu;
                output.WriteLine($"{tok.GetType().Name}: {ids.Length} tokens in {used.TotalMilliseconds:F0} ms CPU");
                Assert.True(used < TimeSpan.FromSeconds(5), $"{tok.GetType().Name} took {used.TotalMilliseconds:F0} ms CPU");
                Assert.Equal(text, tok.Decode(ids));
            }
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Encode_PydocText_ReportsTokensPerSecond()
    {
        // CPU time of this process, not wall time: the shared build machines are heavily oversubscribed.
        string text = ProseTokenizers.EvalText("pydoc.txt");
        string[] lines = ProseTokenizers.EvalLines("pydoc.txt");
        var process = System.Diagnostics.Process.GetCurrentProcess();
        foreach (var tok in All())
        {
            for (int i = 0; i < 3; i++) tok.Encode(text, addBos: true); // warm up (JIT tiers, word cache)
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            long tokens = 0;
            for (int i = 0; i < 5; i++) tokens += tok.Encode(text, addBos: true).Length;
            process.Refresh();
            double wholeRate = tokens / Math.Max(1e-3, (process.TotalProcessorTime - cpu).TotalSeconds);
            cpu = process.TotalProcessorTime;
            tokens = 0;
            foreach (var line in lines) tokens += tok.Encode(line, addBos: false).Length;
            process.Refresh();
            double lineRate = tokens / Math.Max(1e-3, (process.TotalProcessorTime - cpu).TotalSeconds);
            output.WriteLine($"{tok.GetType().Name}: whole file {wholeRate / 1e6:F2} M tokens/s, line by line {lineRate / 1e6:F2} M tokens/s (CPU time)");
            Assert.True(wholeRate > 300_000, $"{tok.GetType().Name}: only {wholeRate:F0} tokens/s");
        }
    }
}
