using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace QuantServe.Api.Tests.TestSupport;

/// <summary>
/// A real <c>quantserve</c> server in a child process on a free loopback port, for tests that kill it (SIGKILL: no
/// shutdown code runs) or stop it (SIGTERM: the host's graceful shutdown), then start another over the same data.
/// </summary>
public sealed class ChildServer : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _log = new();

    private ChildServer(Process process, int port)
    {
        Process = process;
        Port = port;
        Client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public Process Process { get; }
    public int Port { get; }
    public HttpClient Client { get; }

    /// <summary>What the server wrote to stdout and stderr so far (for assertion messages).</summary>
    public string Log => string.Join('\n', _log);

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Starts <c>quantserve serve</c> over <paramref name="data"/>, serving <paramref name="modelsDirectory"/>,
    /// with extra configuration switches. <paramref name="wrapper"/> (e.g. <c>unshare</c> with arguments) runs the server
    /// through another program, which must exec it so the child's pid is the server's.</summary>
    public static ChildServer Start(string data, string modelsDirectory, IEnumerable<string>? settings = null, IReadOnlyList<string>? wrapper = null)
    {
        int port = FreePort();
        string dll = Path.Combine(AppContext.BaseDirectory, "quantserve.dll");
        var args = new List<string>
        {
            "dotnet", dll, "serve", "--urls", $"http://127.0.0.1:{port}", $"--QuantServe:DataDirectory={data}",
            $"--QuantServe:ModelsDirectory={modelsDirectory}", "--QuantServe:Jobs:Concurrency=1",
        };
        args.AddRange(settings ?? []);
        if (wrapper is not null) args.InsertRange(0, wrapper);
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args.Skip(1)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var server = new ChildServer(p, port);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) server._log.Enqueue(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) server._log.Enqueue(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return server;
    }

    /// <summary>Waits until <paramref name="path"/> answers 200 (default: the default model is loaded).</summary>
    public async Task WaitAsync(string path = "/health/ready", int seconds = 60)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(Process.HasExited, $"quantserve exited with {(Process.HasExited ? Process.ExitCode : 0)}:\n{Log}");
            try { if ((await Client.GetAsync(path)).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"quantserve did not answer {path}:\n{Log}");
    }

    /// <summary>SIGKILL, then waits for the process to be gone.</summary>
    public async Task KillAsync()
    {
        Process.Kill(entireProcessTree: true);
        await Process.WaitForExitAsync();
    }

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    private static extern int SysKill(int pid, int signal);

    /// <summary>Sends SIGTERM (the signal a container runtime or systemd sends to stop a service).</summary>
    public void Terminate()
    {
        const int sigterm = 15;
        Assert.Equal(0, SysKill(Process.Id, sigterm));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync();
        }
        Process.Dispose();
    }
}
