using System.Text.Json.Serialization;

namespace QuantServe.Api.Quantization;

/// <summary>A job's parameters as submitted (JSON body or form fields) and stored with the job.</summary>
public sealed record JobOptions
{
    /// <summary>Registered model id to quantize (absent for uploads).</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }
    /// <summary>Target: a llama.cpp preset (Q4_K_M, Q8_0, …; Q3_K/Q4_K/Q5_K mean their _M mix, as in llama-quantize), any source;
    /// or one of QuantServe's own types (int8, int4-g32, nf4, nf4-dq, fp4, llm-int8, …), non-GGUF sources.</summary>
    [JsonPropertyName("method")] public string? Method { get; init; }
    /// <summary>Columns per quantization group for integer types: folded into the method at submission (int4 + 64 →
    /// int4-g64, gptq-int4 + 64 → gptq-int4-g64); a different group in the name, or a type with fixed blocks, is a 400.</summary>
    [JsonPropertyName("group_size")] public int? GroupSize { get; init; }
    /// <summary>Calibration text: with a GGUF preset, an importance matrix is computed from it and guides the k-quants
    /// (as llama-imatrix + llama-quantize --imatrix); round-to-nearest types take none.</summary>
    [JsonPropertyName("calibration_text")] public string? CalibrationText { get; init; }
    /// <summary>Evaluation text; default: the built-in slice.</summary>
    [JsonPropertyName("eval_text")] public string? EvalText { get; init; }
    /// <summary>Task evaluation set: prompts with expected answers.</summary>
    [JsonPropertyName("task_eval")] public List<TaskEvalItem>? TaskEval { get; init; }
    /// <summary>Context for the VRAM estimate and the evaluation window (default 256, capped by the model).</summary>
    [JsonPropertyName("context")] public int? Context { get; init; }
    /// <summary>Batch for the VRAM estimate (default 1).</summary>
    [JsonPropertyName("batch")] public int? Batch { get; init; }
    /// <summary>Tokens of evaluation text scored at most (default 1024).</summary>
    [JsonPropertyName("eval_tokens")] public int? EvalTokens { get; init; }
    /// <summary>Task score loss (percent) still recommended for deployment (default 5).</summary>
    [JsonPropertyName("degradation_threshold")] public double? DegradationThreshold { get; init; }
    /// <summary>For uploads: the stored upload (file or extracted folder) inside the data directory.</summary>
    [JsonPropertyName("source_path")] public string? SourcePath { get; init; }
}

/// <summary>One task-eval prompt and how its answer is checked.</summary>
public sealed record TaskEvalItem
{
    /// <summary>Prompt text.</summary>
    [JsonPropertyName("prompt")] public string Prompt { get; init; } = "";
    /// <summary>Expected answer (exact / contains / regex); unused for json.</summary>
    [JsonPropertyName("expected")] public string? Expected { get; init; }
    /// <summary>exact | contains | regex | json.</summary>
    [JsonPropertyName("match")] public string Match { get; init; } = "contains";
    /// <summary>Tokens generated (greedy) for the answer; default 16.</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }
}

/// <summary>The <c>QuantServe:Jobs</c> configuration section.</summary>
public sealed class JobsSettings
{
    /// <summary>Section name.</summary>
    public const string Section = "QuantServe:Jobs";
    /// <summary>Jobs run at once; 0 accepts and stores jobs without running them (a paused server).</summary>
    public int Concurrency { get; set; } = 1;
    /// <summary>Jobs waiting in memory at most; submissions beyond it are refused with 503.</summary>
    public int QueueCapacity { get; set; } = 256;
}

/// <summary>The <c>QuantServe:Uploads</c> configuration section.</summary>
public sealed class UploadSettings
{
    /// <summary>Section name.</summary>
    public const string Section = "QuantServe:Uploads";
    /// <summary>Largest accepted upload (bytes).</summary>
    public long MaxBytes { get; set; } = 8L << 30;
    /// <summary>Most entries in an uploaded archive.</summary>
    public int MaxArchiveEntries { get; set; } = 1000;
    /// <summary>Largest total expanded size of an uploaded archive (bytes).</summary>
    public long MaxExpandedBytes { get; set; } = 32L << 30;
}
