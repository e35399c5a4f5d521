using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantServe.Api.Reliability;

/// <summary>What one load run measured (serialized as the --json output, snake_case).</summary>
public sealed record LoadReport
{
    /// <summary>Server base address.</summary>
    public required string Url { get; init; }
    /// <summary>Model id the requests named.</summary>
    public required string Model { get; init; }
    /// <summary>Concurrent clients.</summary>
    public int Clients { get; init; }
    /// <summary>Requested duration (seconds) during which new requests were started.</summary>
    public double DurationSeconds { get; init; }
    /// <summary>Seconds from the first request to the last response (in-flight requests are awaited).</summary>
    public double ElapsedSeconds { get; init; }
    /// <summary>Fraction of requests that streamed (configured).</summary>
    public double StreamRatio { get; init; }
    /// <summary>Requests started.</summary>
    public long Requests { get; init; }
    /// <summary>Of them, streaming.</summary>
    public long Streamed { get; init; }
    /// <summary>Requests that failed, all kinds.</summary>
    public long Errors { get; init; }
    /// <summary>Failures by kind (http_429, http_500, timeout, connection, stream_error, incomplete_stream, bad_response).</summary>
    public required IReadOnlyDictionary<string, long> ErrorsByKind { get; init; }
    /// <summary>First error messages seen (at most a few), to diagnose a failed run.</summary>
    public required IReadOnlyList<string> ErrorSamples { get; init; }
    /// <summary>Latency of successful requests, request start to last byte (milliseconds).</summary>
    public required Percentiles LatencyMs { get; init; }
    /// <summary>Time to the first token-carrying event of successful streams (milliseconds).</summary>
    public required Percentiles TimeToFirstTokenMs { get; init; }
    /// <summary>Completion tokens of successful requests (from each response's usage).</summary>
    public long CompletionTokens { get; init; }
    /// <summary>CompletionTokens ÷ ElapsedSeconds.</summary>
    public double TokensPerSecond { get; init; }
    /// <summary>Successful requests ÷ ElapsedSeconds.</summary>
    public double RequestsPerSecond { get; init; }
    /// <summary>Process memory over the run, or null when the server process cannot be observed.</summary>
    public MemoryTrend? Memory { get; init; }

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The report as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The report as Markdown tables.</summary>
    public string ToMarkdown()
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(c, $"load: {Url} model {Model}, {Clients} clients × {DurationSeconds:F0} s, stream ratio {StreamRatio:F2} (elapsed {ElapsedSeconds:F1} s)");
        sb.AppendLine("| requests | streamed | errors | p50 ms | p90 ms | p99 ms | TTFT p50 ms | TTFT p99 ms | tokens | tokens/s | req/s |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        sb.AppendLine(c, $"| {Requests} | {Streamed} | {Errors} | {LatencyMs.P50:F1} | {LatencyMs.P90:F1} | {LatencyMs.P99:F1} | {TimeToFirstTokenMs.P50:F1} | {TimeToFirstTokenMs.P99:F1} | {CompletionTokens} | {TokensPerSecond:F1} | {RequestsPerSecond:F1} |");
        if (Errors > 0)
        {
            sb.AppendLine("errors: " + string.Join(", ", ErrorsByKind.Select(kv => $"{kv.Key} {kv.Value}")));
            foreach (var s in ErrorSamples) sb.AppendLine("  " + s);
        }
        if (Memory is { } m)
        {
            sb.AppendLine(c, $"memory ({m.Process}; {m.Samples} samples, 1/s, first {m.WarmupSeconds:F0} s of warm-up excluded):");
            sb.AppendLine("| | working set MB | GC heap MB |");
            sb.AppendLine("|---|---:|---:|");
            sb.AppendLine(c, $"| first half mean | {m.FirstHalf.WorkingSetMb:F1} | {Fmt(m.FirstHalf.GcHeapMb)} |");
            sb.AppendLine(c, $"| second half mean | {m.SecondHalf.WorkingSetMb:F1} | {Fmt(m.SecondHalf.GcHeapMb)} |");
            sb.AppendLine(c, $"| growth | {m.WorkingSetGrowthPct:+0.0;-0.0}% | {Fmt(m.GcHeapGrowthPct, "%")} |");
            sb.AppendLine(c, $"memory flat (second half within {m.FlatTolerancePct:F0}% of the first): {(m.Flat ? "yes" : "NO")}");
        }
        return sb.ToString();
    }

    private static string Fmt(double? v, string unit = "")
        => v is { } x ? x.ToString(unit == "%" ? "+0.0;-0.0" : "F1", CultureInfo.InvariantCulture) + unit : "n/a";
}

/// <summary>Nearest-rank percentiles of a sample (NaN when it is empty).</summary>
public sealed record Percentiles(long Count, double P50, double P90, double P99, double Max)
{
    /// <summary>Percentiles of <paramref name="values"/> (the list is sorted in place).</summary>
    public static Percentiles Of(List<double> values)
    {
        if (values.Count == 0) return new Percentiles(0, double.NaN, double.NaN, double.NaN, double.NaN);
        values.Sort();
        return new Percentiles(values.Count, Rank(values, 0.50), Rank(values, 0.90), Rank(values, 0.99), values[^1]);
    }

    /// <summary>The value at rank ⌈p·n⌉ (1-based) of the sorted list.</summary>
    public static double Rank(IReadOnlyList<double> sorted, double p)
        => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}

/// <summary>Mean memory of one half of the run.</summary>
/// <param name="WorkingSetMb">Resident set (MiB).</param>
/// <param name="GcHeapMb">Managed heap size after the latest collection (MiB), when the process is this one.</param>
public sealed record MemoryHalf(double WorkingSetMb, double? GcHeapMb);

/// <summary>Memory sampled once a second after warm-up, compared between the first and the second half of the samples.</summary>
public sealed record MemoryTrend
{
    /// <summary>Which process was sampled.</summary>
    public required string Process { get; init; }
    /// <summary>Samples after warm-up.</summary>
    public int Samples { get; init; }
    /// <summary>Seconds at the start not sampled (JIT, caches, pools filling).</summary>
    public double WarmupSeconds { get; init; }
    /// <summary>First half mean.</summary>
    public required MemoryHalf FirstHalf { get; init; }
    /// <summary>Second half mean.</summary>
    public required MemoryHalf SecondHalf { get; init; }
    /// <summary>100 × (second − first) ÷ first, working set.</summary>
    public double WorkingSetGrowthPct { get; init; }
    /// <summary>100 × (second − first) ÷ first, GC heap.</summary>
    public double? GcHeapGrowthPct { get; init; }
    /// <summary>Allowed growth for "flat".</summary>
    public double FlatTolerancePct { get; init; }
    /// <summary>Whether every measured growth is within <see cref="FlatTolerancePct"/>.</summary>
    public bool Flat { get; init; }
    /// <summary>Every sample after warm-up (seconds since the start, bytes), to plot or inspect a trend.</summary>
    public required IReadOnlyList<MemorySample> Series { get; init; }

    /// <summary>Compares the halves of <paramref name="samples"/> (already restricted to after warm-up).</summary>
    public static MemoryTrend? From(string process, IReadOnlyList<MemorySample> samples, double warmupSeconds, double tolerancePct)
    {
        if (samples.Count < 2) return null;
        int half = samples.Count / 2;
        var first = samples.Take(half).ToList();
        var second = samples.Skip(samples.Count - half).ToList();
        static MemoryHalf Mean(List<MemorySample> s) => new(
            s.Average(x => x.WorkingSetBytes) / (1 << 20),
            s.All(x => x.GcHeapBytes is not null) ? s.Average(x => (double)x.GcHeapBytes!.Value) / (1 << 20) : null);
        var a = Mean(first);
        var b = Mean(second);
        double ws = 100 * (b.WorkingSetMb - a.WorkingSetMb) / a.WorkingSetMb;
        double? heap = a.GcHeapMb is { } h1 && b.GcHeapMb is { } h2 && h1 > 0 ? 100 * (h2 - h1) / h1 : null;
        return new MemoryTrend
        {
            Process = process, Samples = samples.Count, WarmupSeconds = warmupSeconds, FirstHalf = a, SecondHalf = b,
            WorkingSetGrowthPct = ws, GcHeapGrowthPct = heap, FlatTolerancePct = tolerancePct,
            Flat = ws <= tolerancePct && (heap ?? 0) <= tolerancePct, Series = samples,
        };
    }
}

/// <summary>One memory sample.</summary>
/// <param name="Seconds">Since the run started.</param>
/// <param name="WorkingSetBytes">Resident set.</param>
/// <param name="GcHeapBytes">Managed heap after the latest collection (this process only).</param>
public sealed record MemorySample(double Seconds, long WorkingSetBytes, long? GcHeapBytes);
