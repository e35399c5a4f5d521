using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using QuantServe.Api.OpenAi;
using QuantServe.Api.OpenAi.Chat;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace QuantServe.Api.Hosting;

/// <summary>Swagger document (/swagger/v1/swagger.json) and UI (/swagger).</summary>
public static class SwaggerSetup
{
    /// <summary>Registers the generator: XML docs for descriptions and examples, the polymorphic OpenAI fields as oneOf schemas.</summary>
    public static IServiceCollection AddQuantServeSwagger(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(c =>
        {
            c.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "QuantServe",
                Version = "v1",
                Description = "OpenAI-compatible completions and chat API over quantized Llama-family models, plus model listing, health and metrics.",
            });
            string xml = Path.Combine(AppContext.BaseDirectory, "quantserve.xml");
            if (File.Exists(xml)) c.IncludeXmlComments(xml);
            c.MapType<PromptInput>(() => new OpenApiSchema
            {
                Description = "A string, an array of strings, an array of token ids, or an array of token-id arrays.",
                OneOf =
                [
                    new OpenApiSchema { Type = JsonSchemaType.String },
                    new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
                    new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.Integer } },
                    new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.Integer } } },
                ],
                Example = JsonValue.Create("Once upon a time"),
            });
            c.MapType<StopInput>(() => new OpenApiSchema
            {
                Description = "A stop sequence or up to 4 of them.",
                OneOf =
                [
                    new OpenApiSchema { Type = JsonSchemaType.String },
                    new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String }, MaxItems = 4 },
                ],
                Example = JsonValue.Create("\n\n"),
            });
            c.MapType<ChatContent>(() => new OpenApiSchema
            {
                Description = "Text, or an array of {\"type\":\"text\",\"text\":...} parts.",
                OneOf =
                [
                    new OpenApiSchema { Type = JsonSchemaType.String },
                    new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.Object } },
                ],
                Example = JsonValue.Create("Tell me a story about a cat."),
            });
            c.OperationFilter<RequestExamplesFilter>();
            // API keys (QuantServe:Auth): a bearer token on every route but /health, /metrics and Swagger itself.
            c.AddSecurityDefinition("ApiKey", new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "An API key as 'Authorization: Bearer <key>': scope 'inference' for /v1, 'admin' for /quantize and /models. Not needed when the server runs open.",
            });
            c.OperationFilter<ApiKeyRequirementFilter>();
        });
        return services;
    }

    /// <summary>Marks every operation that needs a key (all but the open health, metrics and Swagger routes) with the
    /// bearer scheme and the scope it needs.</summary>
    private sealed class ApiKeyRequirementFilter : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            string path = "/" + (context.ApiDescription.RelativePath ?? "").Split('?')[0];
            if (QuantServe.Api.Security.ApiKeyMiddleware.RequiredScope(path) is not { } scope) return;
            operation.Security ??= [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("ApiKey", context.Document)] = [scope] });
        }
    }

    /// <summary>Whole-body examples for the generation endpoints (property examples come from the XML docs).</summary>
    private sealed class RequestExamplesFilter : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            JsonNode? example = operation.OperationId switch
            {
                "CreateCompletion" => new JsonObject
                {
                    ["model"] = "stories260K", ["prompt"] = "Once upon a time", ["max_tokens"] = 64,
                    ["temperature"] = 0.8, ["top_p"] = 0.95, ["seed"] = 42, ["stop"] = new JsonArray("\n\n"),
                },
                "CreateChatCompletion" => new JsonObject
                {
                    ["model"] = "stories260K",
                    ["messages"] = new JsonArray(
                        new JsonObject { ["role"] = "system", ["content"] = "You tell short stories." },
                        new JsonObject { ["role"] = "user", ["content"] = "Tell me a story about a cat." }),
                    ["max_tokens"] = 64, ["temperature"] = 0.7,
                },
                _ => null,
            };
            if (example is null || operation.RequestBody?.Content is null) return;
            foreach (var media in operation.RequestBody.Content.Values) media.Example = example.DeepClone();
        }
    }
}
