namespace QuantServe.Api.Quantization;

/// <summary>Lifecycle states of a quantization job (stored as lower-case text).</summary>
public static class JobStatus
{
    /// <summary>Waiting for a worker.</summary>
    public const string Queued = "queued";
    /// <summary>Being processed.</summary>
    public const string Running = "running";
    /// <summary>Finished; the result holds the new model id and the report.</summary>
    public const string Succeeded = "succeeded";
    /// <summary>Stopped by an error (see the job's error).</summary>
    public const string Failed = "failed";
    /// <summary>Cancelled by a client.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>Whether <paramref name="status"/> is final.</summary>
    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;
}

/// <summary>One row of the jobs table.</summary>
public sealed record JobRecord
{
    /// <summary>Job id (32 hex digits).</summary>
    public required string Id { get; init; }
    /// <summary>Source model id (registered model, or the uploaded file's name).</summary>
    public required string Model { get; init; }
    /// <summary>Quantization method as requested (e.g. Q8_0).</summary>
    public required string Method { get; init; }
    /// <summary>The request's options as JSON (<see cref="JobOptions"/>).</summary>
    public required string OptionsJson { get; init; }
    /// <summary>One of <see cref="JobStatus"/>.</summary>
    public required string Status { get; init; }
    /// <summary>Current stage name.</summary>
    public string? Stage { get; init; }
    /// <summary>Progress 0–1.</summary>
    public double Progress { get; init; }
    /// <summary>When the job was accepted.</summary>
    public DateTimeOffset Created { get; init; }
    /// <summary>When the current (or last) run started.</summary>
    public DateTimeOffset? Started { get; init; }
    /// <summary>When the job reached a terminal state.</summary>
    public DateTimeOffset? Finished { get; init; }
    /// <summary>Why the job failed.</summary>
    public string? Error { get; init; }
    /// <summary>On success: {"model_id", "report"} as JSON.</summary>
    public string? ResultJson { get; init; }
}
