using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>A Q8_0 job on llama.cpp's evaluation setup reproduces llama.cpp's measurements (llama-cpp-reference.md).</summary>
public sealed class LlamaCppParityTests
{
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Report_Q8_0OnBiblePydocCtx256_MatchesLlamaCppPerplexityAndKld()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var host = new JobHost(data);
            string text = await File.ReadAllTextAsync(SharedAssets.Path("eval", "bible.txt"))
                + await File.ReadAllTextAsync(SharedAssets.Path("eval", "pydoc.txt"));
            string id = await host.SubmitAsync(new { model = "prose-15m-f16", method = "Q8_0", context = 256, eval_tokens = int.MaxValue, eval_text = text });
            var (job, _) = await host.WaitAsync(id, TimeSpan.FromMinutes(30));
            Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
            var report = job["result"]!["report"]!;
            // llama.cpp: F16 PPL 18.5138, Q8_0 PPL 18.526220, mean KLD 0.000455, same top token 98.603 %.
            Assert.Equal(18.5138, (double)report["perplexity_base"]!, 0.01);
            Assert.Equal(18.52622, (double)report["perplexity"]!, 0.01);
            Assert.Equal(0.000455, (double)report["kld_mean"]!, 0.00005);
            Assert.Equal(0.98603, (double)report["top1_agreement"]!, 0.003);
        }
        finally { JobHost.DeleteDirectory(data); }
    }
}
