using System.Text;
using System.Threading.Channels;

namespace QuantServe.Api.Serving;

/// <summary>Everything one sequence reported, gathered for a non-streamed response.</summary>
public sealed class SequenceResult
{
    /// <summary>Completion text as released to the client (stop sequences cut).</summary>
    public StringBuilder Text { get; } = new();

    /// <summary>Generated tokens in order.</summary>
    public List<TokenGenerated> Tokens { get; } = [];

    /// <summary>Prompt scores when requested.</summary>
    public PromptScored? Prompt { get; private set; }

    /// <summary>The final event.</summary>
    public GenerationFinished Finished { get; private set; } = null!;

    /// <summary>Folds one event in.</summary>
    public void Add(GenerationEvent e)
    {
        switch (e)
        {
            case PromptScored p: Prompt = p; break;
            case TokenGenerated t: Tokens.Add(t); Text.Append(t.Text); break;
            case GenerationFinished f: Finished = f; Text.Append(f.Text); break;
        }
    }

    /// <summary>Mean log-probability of the generated tokens (best_of ranking); -∞ for none.</summary>
    public double MeanLogprob => Tokens.Count == 0 ? double.NegativeInfinity : Tokens.Average(t => (double)t.Logprob);

    /// <summary>Reads <paramref name="events"/> to the end.</summary>
    public static async Task<SequenceResult> CollectAsync(ChannelReader<GenerationEvent> events, CancellationToken cancellation)
    {
        var r = new SequenceResult();
        await foreach (var e in events.ReadAllAsync(cancellation)) r.Add(e);
        if (r.Finished is null) throw new OperationCanceledException("the sequence ended without finishing");
        return r;
    }

    /// <summary>Generated tokens that precede the cut of a stop sequence (all of them when none cut the text), with
    /// each token's character offset in the completion text.</summary>
    public IEnumerable<(TokenGenerated Token, int Offset)> VisibleTokens()
    {
        int offset = 0;
        int visible = Finished.EmittedLength;
        int rawTotal = Tokens.Sum(t => t.RawText.Length);
        bool cut = rawTotal > visible;
        foreach (var t in Tokens)
        {
            if (cut && offset >= visible) yield break;
            yield return (t, offset);
            offset += t.RawText.Length;
        }
    }
}
