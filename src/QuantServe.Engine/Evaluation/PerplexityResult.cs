namespace QuantServe.Engine.Evaluation;

/// <summary>Perplexity of a model on a text under llama-perplexity's protocol (see <see cref="EvaluationWindows"/>).</summary>
/// <param name="Value">exp(mean NLL) over the scored tokens.</param>
/// <param name="StdErr">llama.cpp's ±: ppl · sqrt((mean(NLL²) − mean(NLL)²) / (N − 1)), 0 when the variance is not positive.</param>
/// <param name="MeanNll">Mean negative log-likelihood (nats per token).</param>
/// <param name="TokensScored">N: scored tokens, chunks · (n_ctx − 1 − n_ctx/2).</param>
/// <param name="Chunks">Windows evaluated.</param>
/// <param name="ContextLength">Tokens per window.</param>
/// <param name="TextTokens">Tokens of the whole text.</param>
/// <param name="Seconds">Wall time of the evaluation (tokenization excluded).</param>
public sealed record PerplexityResult(double Value, double StdErr, double MeanNll, int TokensScored, int Chunks, int ContextLength, int TextTokens, double Seconds)
{
    /// <summary>Perplexity from accumulated Σ NLL and Σ NLL² over <paramref name="count"/> tokens, as llama.cpp finishes it.</summary>
    internal static PerplexityResult FromSums(double nll, double nll2, int count, EvaluationWindows windows, double seconds)
    {
        double mean = nll / count;
        double variance = nll2 / count - mean * mean;
        double ppl = Math.Exp(mean);
        double stderr = variance > 0 && count > 1 ? Math.Sqrt(variance / (count - 1)) * ppl : 0;
        return new PerplexityResult(ppl, stderr, mean, count, windows.Chunks, windows.ContextLength, windows.TextTokens, seconds);
    }
}
