using System.ClientModel;
using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

/// <summary>The official OpenAI .NET SDK against a key-protected server on Kestrel: keys travel as the SDK sends them,
/// and refusals surface as the SDK's own errors.</summary>
public sealed class OpenAiSdkKeyTests : IAsyncLifetime
{
    private readonly Dictionary<string, string?> _settings = SecuredServer.Settings(new() { ["QuantServe:DataDirectory"] = SecuredServer.NewDataDirectory() });
    private readonly QuantServeFactory _factory;
    private Uri _v1 = null!;

    public OpenAiSdkKeyTests() => _factory = new QuantServeFactory(_settings);

    public async Task InitializeAsync()
    {
        _factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        _factory.StartServer();
        _v1 = new Uri(new Uri(_factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()), "/v1");
        await _factory.WaitReadyAsync();
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        try { Directory.Delete(_settings["QuantServe:DataDirectory"]!, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    private OpenAIClient Sdk(string key) => new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = _v1 });

    [Fact]
    public async Task Chat_InferenceKey_Completes()
    {
        var chat = Sdk(SecuredServer.InferenceKey).GetChatClient("stories260K");
        var completion = (await chat.CompleteChatAsync([new UserChatMessage("A story")], new ChatCompletionOptions { MaxOutputTokenCount = 4, Temperature = 0 })).Value;
        Assert.Equal(4, completion.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Models_WrongOrAdminOnlyKey_SdkReports401And403()
    {
        var wrong = await Assert.ThrowsAsync<ClientResultException>(() => Sdk("sk-wrong-0123456789abcdef0123").GetOpenAIModelClient().GetModelsAsync());
        Assert.Equal(401, wrong.Status);
        Assert.Contains("Incorrect API key", wrong.Message);
        var admin = await Assert.ThrowsAsync<ClientResultException>(() => Sdk(SecuredServer.AdminKey).GetOpenAIModelClient().GetModelsAsync());
        Assert.Equal(403, admin.Status);
        Assert.Contains("inference", admin.Message);
    }
}
