namespace QuantServe.Api.Serving;

/// <summary>Limits of one model's batch scheduler (from <see cref="Hosting.QuantServeOptions"/>).</summary>
/// <param name="MaxBatch">Sequences decoded together.</param>
/// <param name="MaxContext">Positions per sequence (capped by the model's context length).</param>
/// <param name="MaxQueue">Sequences allowed to wait; beyond it submissions are refused (429).</param>
/// <param name="MaxBatchTokens">Tokens per forward piece (prompt processing is cut into pieces of this size).</param>
/// <param name="RetryAfterSeconds">Retry-After for refused submissions.</param>
/// <param name="KvCacheBudgetBytes">Most bytes of KV caches (running and idle) the model may hold; 0 = no limit beyond the engine's memory.</param>
public sealed record SchedulerOptions(int MaxBatch, int MaxContext, int MaxQueue, int MaxBatchTokens, int RetryAfterSeconds, long KvCacheBudgetBytes = 0);
