using QuantServe.Api.Tests.TestSupport;
using System.Text.Json.Nodes;

namespace QuantServe.Api.Tests.OpenAi;

public sealed class ModelsEndpointTests(InProcessServer server) : IClassFixture<InProcessServer>
{
    [Fact]
    public async Task List_DefaultConfiguration_ReturnsEmbeddedModelWithMetadata()
    {
        var body = JsonNode.Parse(await server.Client.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string?)body["object"]);
        var model = body["data"]!.AsArray().Single(m => (string?)m!["id"] == "stories260K")!;
        Assert.Equal("model", (string?)model["object"]);
        Assert.Equal("quantserve", (string?)model["owned_by"]);
        Assert.True((long)model["created"]! > 0);
        Assert.Equal("llama2c", (string?)model["format"]);
        Assert.Equal("F32", (string?)model["precision"]);
        Assert.Equal(260032L, (long)model["parameters"]!);
        Assert.Equal(512, (int)model["context_length"]!);
        Assert.Equal(260032L * 4, (long)model["bytes"]!);
    }

    [Fact]
    public async Task Retrieve_KnownId_ReturnsModelObject()
    {
        var body = JsonNode.Parse(await server.Client.GetStringAsync("/v1/models/stories260K"))!;
        Assert.Equal("stories260K", (string?)body["id"]);
        Assert.True((bool)body["loaded"]!);
    }

    [Fact]
    public async Task Retrieve_UnknownId_Returns404ModelNotFound()
    {
        var r = await server.Client.GetAsync("/v1/models/nope");
        Json.AssertError(r, JsonNode.Parse(await r.Content.ReadAsStringAsync())!, 404, "invalid_request_error", "model", "model_not_found");
    }
}
