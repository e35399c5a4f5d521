using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using QuantServe.Api.Registry;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Quantization;

/// <summary>POST/GET/DELETE /quantize and the SSE progress stream.</summary>
public static class QuantizeEndpoints
{
    /// <summary>A job as the API shows it.</summary>
    public sealed record JobView(string Id, string Model, string Method, string Status, string? Stage, double Progress,
        DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, double? EtaSeconds, string? Error, JsonElement? Result);

    /// <summary>Answer to a submission.</summary>
    public sealed record Accepted(string Id, string Status);

    /// <summary>A page of jobs.</summary>
    public sealed record JobPage(IReadOnlyList<JobView> Data, long Total, int Offset, int Limit);

    private const long MaxFieldBytes = 16 << 20;

    /// <summary>Maps the /quantize group.</summary>
    public static IEndpointRouteBuilder MapQuantize(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/quantize").WithTags("Quantization");
        g.MapPost("", Submit).WithName("SubmitQuantization").DisableAntiforgery()
            .WithSummary("Queues a quantization job: JSON {model, method, …} or multipart with a model file and the same fields.");
        g.MapGet("", List).WithName("ListQuantizations").WithSummary("Jobs, newest first (paged: offset, limit).");
        g.MapGet("/{id}", Get).WithName("GetQuantization").WithSummary("Status, stage, progress, timestamps, ETA, error and result.");
        g.MapDelete("/{id}", Cancel).WithName("CancelQuantization").WithSummary("Cancels a queued or running job.");
        g.MapGet("/{id}/events", Events).WithName("QuantizationEvents").WithSummary("Server-sent progress events until the job ends.");
        return app;
    }

    internal static JobView View(JobRecord j)
    {
        double? eta = null;
        if (j.Status == JobStatus.Running && j.Started is { } s && j.Progress > 0.01)
        {
            double elapsed = (DateTimeOffset.UtcNow - s).TotalSeconds;
            eta = Math.Max(0, elapsed * (1 - j.Progress) / j.Progress);
        }
        JsonElement? result = j.ResultJson is null ? null : JsonDocument.Parse(j.ResultJson).RootElement.Clone();
        return new JobView(j.Id, j.Model, j.Method, j.Status, j.Stage, j.Progress, j.Created, j.Started, j.Finished, eta, j.Error, result);
    }

    private static ProblemHttpResult Problem(int status, string title, string detail)
        => TypedResults.Problem(detail: detail, statusCode: status, title: title);

    private static async Task<Results<Accepted<Accepted>, ProblemHttpResult>> Submit(HttpContext http, JobStore store, JobQueue queue,
        ModelRegistry registry, IOptions<UploadSettings> uploads)
    {
        string id = Guid.NewGuid().ToString("N");
        var request = http.Request;
        JobOptions options;
        string? uploadDir = null;
        try
        {
            if (request.HasJsonContentType())
            {
                try { options = await JsonSerializer.DeserializeAsync<JobOptions>(request.Body, JobRunner.Json, http.RequestAborted) ?? new JobOptions(); }
                catch (JsonException e) { return Problem(400, "Malformed request", $"the body is not valid JSON for a quantization request: {e.Message}"); }
                if (string.IsNullOrWhiteSpace(options.Model)) return Problem(400, "Missing model", "'model' names the registered model to quantize");
                var entry = registry.Find(options.Model);
                if (entry is null) return Problem(404, "Unknown model", $"no model '{options.Model}' is registered (GET /v1/models lists them)");
                if (GroupProblem(ref options) is { } gp) return gp;
                if (MethodProblem(options.Method) is { } p) return p;
                if (QuantizationMethods.SourceProblem(options.Method!, ModelLoader.DetectFormat(entry.Path)) is { } why)
                    return Problem(400, "Unsupported source", $"'{entry.Id}': {why}");
            }
            else if (request.HasFormContentType && MediaTypeHeaderValue.TryParse(request.ContentType, out var media)
                     && media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            {
                uploadDir = Path.Combine(store.DataDirectory, "uploads", id);
                (options, var rejection) = await ReceiveMultipart(http, media, uploadDir, uploads.Value);
                if (rejection is not null) { DeleteDir(uploadDir); return rejection; }
            }
            else return Problem(415, "Unsupported content type", "send application/json or multipart/form-data");
        }
        catch (UploadRejectedException e)
        {
            if (uploadDir is not null) DeleteDir(uploadDir);
            return Problem(e.Status, "Upload rejected", e.Message);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or BadHttpRequestException)
        {
            if (uploadDir is not null) DeleteDir(uploadDir);
            // The server's body limit surfaces here as a 413 BadHttpRequestException.
            return Problem(e is BadHttpRequestException b ? b.StatusCode : 400, "Upload failed", e.Message);
        }

        var job = new JobRecord
        {
            Id = id, Model = options.Model!, Method = QuantizationMethods.Canonical(options.Method)!, Status = JobStatus.Queued,
            OptionsJson = JsonSerializer.Serialize(options with { Model = options.Model, Method = QuantizationMethods.Canonical(options.Method) }, JobRunner.Json),
            Created = DateTimeOffset.UtcNow,
        };
        store.Insert(job);
        if (!queue.TryEnqueue(id))
        {
            store.Cancel(id, DateTimeOffset.UtcNow);
            if (uploadDir is not null) DeleteDir(uploadDir);
            return Problem(503, "Queue full", "too many jobs are waiting; retry later");
        }
        return TypedResults.Accepted($"/quantize/{id}", new Accepted(id, JobStatus.Queued));
    }

    /// <summary>Folds group_size into the method name (int4 + 64 → int4-g64); calibration text must go to a method that
    /// uses it (GGUF presets compute an importance matrix from it; round-to-nearest types use none).</summary>
    private static ProblemHttpResult? GroupProblem(ref JobOptions options)
    {
        string? method = QuantizationMethods.WithGroupSize(options.Method, options.GroupSize, out var problem);
        if (problem is not null) return Problem(400, "Conflicting group size", problem);
        options = options with { Method = method };
        if (!string.IsNullOrEmpty(options.CalibrationText) && QuantizationMethods.IsRtn(method))
            return Problem(400, "Calibration not used", $"'{method}' is a round-to-nearest type and uses no calibration text; calibration_text applies to GGUF presets (an importance matrix)");
        return null;
    }

    private static ProblemHttpResult? MethodProblem(string? method)
    {
        if (QuantizationMethods.Canonical(method) is not null) return null;
        return Problem(400, "Unknown method", $"'{method}' is not a quantization method; valid methods: {QuantizationMethods.ValidNames}");
    }

    private static async Task<(JobOptions, ProblemHttpResult?)> ReceiveMultipart(HttpContext http, MediaTypeHeaderValue media, string dir,
        UploadSettings limits)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            size.MaxRequestBodySize = limits.MaxBytes + MaxFieldBytes;
        if (http.Request.ContentLength is { } declared && declared > limits.MaxBytes + MaxFieldBytes)
            return (new JobOptions(), Problem(413, "Upload too large", $"the request declares {declared} bytes; uploads are limited to {limits.MaxBytes} bytes"));
        string boundary = HeaderUtilities.RemoveQuotes(media.Boundary).Value ?? "";
        if (boundary.Length == 0) return (new JobOptions(), Problem(400, "Malformed upload", "the multipart content type has no boundary"));
        var reader = new MultipartReader(boundary, http.Request.Body);
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string? filePath = null, fileName = null;
        Directory.CreateDirectory(dir);
        while (await reader.ReadNextSectionAsync(http.RequestAborted) is { } section)
        {
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var cd))
                return (new JobOptions(), Problem(400, "Malformed upload", "a multipart section has no Content-Disposition"));
            string name = HeaderUtilities.RemoveQuotes(cd.Name).Value ?? "";
            if (cd.IsFileDisposition())
            {
                if (name != "file" || filePath is not null)
                    return (new JobOptions(), Problem(400, "Malformed upload", "exactly one file part named 'file' is expected"));
                fileName = Path.GetFileName(HeaderUtilities.RemoveQuotes(cd.FileNameStar.HasValue ? cd.FileNameStar : cd.FileName).Value ?? "");
                if (string.IsNullOrWhiteSpace(fileName) || fileName.StartsWith('.'))
                    return (new JobOptions(), Problem(400, "Malformed upload", "the file part needs a file name (.gguf, .zip or .tar)"));
                filePath = Path.Combine(dir, fileName);
                long written = 0;
                var buffer = new byte[1 << 16];
                await using (var fs = new FileStream(filePath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                {
                    int n;
                    while ((n = await section.Body.ReadAsync(buffer, http.RequestAborted)) > 0)
                    {
                        written += n;
                        if (written > limits.MaxBytes)
                            return (new JobOptions(), Problem(413, "Upload too large", $"uploads are limited to {limits.MaxBytes} bytes"));
                        await fs.WriteAsync(buffer.AsMemory(0, n), http.RequestAborted);
                    }
                }
                if (written == 0) return (new JobOptions(), Problem(400, "Malformed upload", $"'{fileName}' is empty"));
            }
            else
            {
                using var sr = new StreamReader(section.Body, Encoding.UTF8);
                var buf = new char[MaxFieldBytes];
                int len = await sr.ReadBlockAsync(buf, http.RequestAborted);
                if (len == buf.Length) return (new JobOptions(), Problem(413, "Field too large", $"form field '{name}' exceeds {MaxFieldBytes} characters"));
                fields[name] = new string(buf, 0, len);
            }
        }
        if (filePath is null) return (new JobOptions(), Problem(400, "Missing file", "multipart submissions carry the model in a part named 'file'"));

        JobOptions options;
        try { options = FromFields(fields); }
        catch (FormatException e) { return (new JobOptions(), Problem(400, "Malformed field", e.Message)); }
        if (GroupProblem(ref options) is { } conflict) return (new JobOptions(), conflict);
        if (MethodProblem(options.Method) is { } bad) return (new JobOptions(), bad);

        string source = UploadValidator.Validate(filePath, fileName!, Path.Combine(dir, "model"), limits);
        if (QuantizationMethods.SourceProblem(options.Method!, ModelLoader.DetectFormat(source)) is { } why)
            return (new JobOptions(), Problem(400, "Unsupported source", $"'{fileName}': {why}"));
        string model = Path.GetFileNameWithoutExtension(fileName!);
        if (!ModelCatalog.IsValidId(model, out var idProblem))
            return (new JobOptions(), Problem(400, "Bad file name", $"'{fileName}' cannot name a model: {idProblem}"));
        return (options with { Model = model, SourcePath = source }, null);
    }

    private static JobOptions FromFields(Dictionary<string, string> f)
    {
        static int? Int(Dictionary<string, string> f, string k)
            => f.TryGetValue(k, out var v) && v.Length > 0 ? int.TryParse(v, out int i) ? i : throw new FormatException($"'{k}' must be an integer") : null;
        static double? Dbl(Dictionary<string, string> f, string k)
            => f.TryGetValue(k, out var v) && v.Length > 0
                ? double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) ? d : throw new FormatException($"'{k}' must be a number")
                : null;
        List<TaskEvalItem>? task = null;
        if (f.TryGetValue("task_eval", out var t) && t.Length > 0)
        {
            try { task = JsonSerializer.Deserialize<List<TaskEvalItem>>(t, JobRunner.Json); }
            catch (JsonException e) { throw new FormatException($"'task_eval' must be a JSON array of {{prompt, expected, match}}: {e.Message}"); }
        }
        return new JobOptions
        {
            Method = f.GetValueOrDefault("method"), GroupSize = Int(f, "group_size"), CalibrationText = f.GetValueOrDefault("calibration_text"),
            EvalText = f.GetValueOrDefault("eval_text"), TaskEval = task, Context = Int(f, "context"), Batch = Int(f, "batch"),
            EvalTokens = Int(f, "eval_tokens"), DegradationThreshold = Dbl(f, "degradation_threshold"),
        };
    }

    private static void DeleteDir(string dir)
    {
        try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static Results<Ok<JobPage>, ProblemHttpResult> List(JobStore store, int? offset, int? limit)
    {
        int o = offset ?? 0, l = limit ?? 20;
        if (o < 0 || l is < 1 or > 200) return Problem(400, "Bad paging", "offset ≥ 0 and 1 ≤ limit ≤ 200");
        var (jobs, total) = store.List(o, l);
        return TypedResults.Ok(new JobPage(jobs.Select(View).ToList(), total, o, l));
    }

    private static Results<Ok<JobView>, ProblemHttpResult> Get(string id, JobStore store)
        => store.Find(id) is { } j ? TypedResults.Ok(View(j)) : Problem(404, "Unknown job", $"no job '{id}'");

    private static Results<Ok<JobView>, ProblemHttpResult> Cancel(string id, JobStore store, JobQueue queue, JobRunner runner)
    {
        var j = store.Find(id);
        if (j is null) return Problem(404, "Unknown job", $"no job '{id}'");
        if (!store.Cancel(id, DateTimeOffset.UtcNow))
            return Problem(409, "Job already finished", $"job '{id}' is {store.Find(id)!.Status}");
        // A running job removes its own upload when it stops; a queued one never starts.
        if (!queue.CancelRunning(id)) runner.RemoveUpload(id);
        return TypedResults.Ok(View(store.Find(id)!));
    }

    private static async Task<IResult> Events(string id, HttpContext http, JobStore store)
    {
        if (store.Find(id) is null) return Problem(404, "Unknown job", $"no job '{id}'");
        var response = http.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        string? last = null;
        var ct = http.RequestAborted;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var j = store.Find(id)!;
                string data = JsonSerializer.Serialize(View(j), JobRunner.Json);
                string key = $"{j.Status}|{j.Stage}|{j.Progress:F4}";
                if (key != last)
                {
                    last = key;
                    string ev = JobStatus.IsTerminal(j.Status) ? j.Status : "progress";
                    await response.WriteAsync($"event: {ev}\ndata: {data}\n\n", ct);
                    await response.Body.FlushAsync(ct);
                }
                if (JobStatus.IsTerminal(j.Status)) break;
                await Task.Delay(200, ct);
            }
        }
        catch (OperationCanceledException) { }
        return TypedResults.Empty;
    }
}
