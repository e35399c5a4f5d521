namespace QuantServe.Api.Hosting;

/// <summary>The <c>QuantServe</c> configuration section (appsettings.json, environment, command line).</summary>
public sealed class QuantServeOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "QuantServe";

    /// <summary>Folder whose entries (.gguf files, Hugging Face folders, llama2.c folders) are served as models; empty = none.</summary>
    public string? ModelsDirectory { get; set; }

    /// <summary>Whether models directory entries may be symbolic links (or folders of links) to files elsewhere, such as the
    /// Hugging Face cache. Off by default, so whoever can write the models directory cannot serve other files through it.</summary>
    public bool AllowLinksOutsideModelsDirectory { get; set; }

    /// <summary>Folder for QuantServe's own state (databases, caches); relative paths resolve against the working directory.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Model loaded at startup and used when a request names no known model. Relative paths resolve against the
    /// application's folder, where the embedded stories260K model is shipped.</summary>
    public string DefaultModel { get; set; } = "models/stories260K";

    /// <summary>Sequences decoded together in one batch.</summary>
    public int MaxBatch { get; set; } = 16;

    /// <summary>Upper bound on a sequence's positions (prompt + completion); the model's own context length caps it further.</summary>
    public int MaxContext { get; set; } = 4096;

    /// <summary>Tokens per forward piece: prompts longer than this are processed in several matrix-matrix passes.</summary>
    public int MaxBatchTokens { get; set; } = 512;

    /// <summary>Requests allowed to wait for a batch slot before new ones are refused with 429.</summary>
    public int MaxQueue { get; set; } = 64;

    /// <summary>Seconds a refused client is told to wait (Retry-After).</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>Where models run: <c>auto</c> (the first CUDA device when one is usable, else the CPU), <c>cpu</c>, or
    /// <c>cuda:N</c> (that device; the server does not start when it cannot be opened).</summary>
    public string Device { get; set; } = "auto";

    /// <summary>Bytes of KV caches one model may hold (running sequences plus idle caches kept for reuse); a sequence that
    /// does not fit waits for others to finish, or is refused with 503 when none runs. 0 = limited only by the memory of
    /// the device (or host) itself.</summary>
    public long KvCacheBudgetBytes { get; set; }

    /// <summary>Worker threads for the engine's kernels; 0 = one per core.</summary>
    public int Threads { get; set; }

    /// <summary>Seconds a stop (SIGTERM, Ctrl+C) waits for in-flight requests to finish before they are aborted; queued
    /// and interrupted quantization jobs stay in the database either way and run after the next start.</summary>
    public double ShutdownTimeoutSeconds { get; set; } = 30;

    /// <summary>Bytes of model weights kept loaded at once; least recently used models are unloaded beyond it. 0 = no limit.</summary>
    public long ModelMemoryBudgetBytes { get; set; }

    /// <summary>The data directory as an absolute path.</summary>
    public string ResolveDataDirectory() => Path.GetFullPath(DataDirectory);

    /// <summary>Where quantization jobs put the models they produce (served as a second models directory).</summary>
    public string ResolveProducedModelsDirectory() => Path.Combine(ResolveDataDirectory(), "models");

    /// <summary>Resolves <see cref="DefaultModel"/> to an absolute path.</summary>
    public string ResolveDefaultModelPath() => ResolveAgainstApp(DefaultModel);

    /// <summary>Resolves a path relative to the application folder (where the embedded model lives).</summary>
    public static string ResolveAgainstApp(string path)
        => Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, path));
}
