using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>A server over a temporary data directory, serving the shared prose-15m GGUF files as models.</summary>
public sealed class JobHost : IAsyncDisposable
{
    public static string ProseGgufDir => SharedAssets.Path("models", "prose-15m-gguf");

    public JobHost(string dataDirectory, Dictionary<string, string?>? settings = null)
    {
        DataDirectory = dataDirectory;
        var all = new Dictionary<string, string?>
        {
            ["QuantServe:DataDirectory"] = dataDirectory,
            ["QuantServe:ModelsDirectory"] = ProseGgufDir,
            ["QuantServe:Jobs:Concurrency"] = "1",
        };
        foreach (var (k, v) in settings ?? new()) all[k] = v;
        Factory = new QuantServeFactory(all);
        Client = Factory.CreateClient();
    }

    public string DataDirectory { get; }
    public QuantServeFactory Factory { get; }
    public HttpClient Client { get; }

    public static string NewDataDirectory()
    {
        string dir = Path.Combine(Path.GetTempPath(), "quantserve-jobs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Submits a JSON job and returns its id (asserting 202 and the Location header).</summary>
    public async Task<string> SubmitAsync(object body)
    {
        var response = await Client.PostAsJsonAsync("/quantize", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, text);
        var json = JsonNode.Parse(text)!;
        Assert.Equal("queued", (string?)json["status"]);
        string id = (string)json["id"]!;
        Assert.Equal($"/quantize/{id}", response.Headers.Location?.OriginalString);
        return id;
    }

    public async Task<JsonNode> GetAsync(string id) => JsonNode.Parse(await Client.GetStringAsync($"/quantize/{id}"))!;

    /// <summary>Polls until the job is terminal; returns the last view and every (stage, progress) seen.</summary>
    public async Task<(JsonNode Job, List<(string? Stage, double Progress)> Seen)> WaitAsync(string id, TimeSpan? timeout = null)
    {
        var seen = new List<(string?, double)>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(180));
        while (true)
        {
            var job = await GetAsync(id);
            seen.Add(((string?)job["stage"], (double)job["progress"]!));
            if ((string?)job["status"] is "succeeded" or "failed" or "cancelled") return (job, seen);
            Assert.True(DateTime.UtcNow < deadline, $"job {id} did not finish in time: {job.ToJsonString()}");
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Factory.DisposeAsync();
    }

    public static void DeleteDirectory(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
