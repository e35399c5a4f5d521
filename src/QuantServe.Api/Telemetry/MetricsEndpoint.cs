namespace QuantServe.Api.Telemetry;

/// <summary>GET /metrics in the Prometheus text format.</summary>
public static class MetricsEndpoint
{
    /// <summary>Maps /metrics.</summary>
    public static IEndpointRouteBuilder MapPrometheusMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", (PrometheusScraper scraper) => TypedResults.Text(scraper.Scrape(), PrometheusScraper.ContentType))
            .WithTags("Telemetry")
            .WithName("Metrics")
            .WithSummary("Prometheus text exposition (format 0.0.4) of QuantServe's gen_ai metrics and ASP.NET Core's meters.")
            .Produces<string>(200, "text/plain");
        return app;
    }
}
