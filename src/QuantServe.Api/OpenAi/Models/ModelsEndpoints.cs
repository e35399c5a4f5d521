using Microsoft.AspNetCore.Http.HttpResults;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;

namespace QuantServe.Api.OpenAi.Models;

/// <summary>GET /v1/models and /v1/models/{id}.</summary>
public static class ModelsEndpoints
{
    /// <summary>Maps the model listing endpoints.</summary>
    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/models").WithTags("Models");
        group.MapGet("/", List)
            .WithName("ListModels")
            .WithSummary("Lists the models the server can serve.")
            .Produces<OpenAiErrorResponse>(500);
        group.MapGet("/{id}", Get)
            .WithName("RetrieveModel")
            .WithSummary("Describes one model.")
            .Produces<OpenAiErrorResponse>(404);
        return app;
    }

    private static Ok<ModelList> List(ModelRegistry registry, SchedulerPool schedulers)
        => TypedResults.Ok(new ModelList("list", registry.List().Select(e => Describe(e, schedulers)).ToList()));

    private static Ok<ModelObject> Get(string id, ModelRegistry registry, SchedulerPool schedulers)
        => TypedResults.Ok(Describe(registry.Find(id) ?? throw OpenAiException.ModelNotFound(id), schedulers));

    /// <summary>The OpenAI model object of <paramref name="e"/>, with QuantServe's metadata and, when it is loaded, the
    /// device it runs on.</summary>
    public static ModelObject Describe(ModelEntry e, SchedulerPool schedulers)
    {
        var m = e.Model;
        return new ModelObject(e.Id, "model", e.Created.ToUnixTimeSeconds(), "quantserve", m?.SourceFormat ?? e.Format,
            m?.Precision, m?.ParameterCount, m?.WeightBytes ?? e.FileBytes, m?.Config.ContextLength, m is not null,
            m is null ? null : schedulers.DeviceOf(m));
    }
}
