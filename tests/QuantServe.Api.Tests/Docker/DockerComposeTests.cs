using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace QuantServe.Api.Tests.Docker;

/// <summary>No Docker engine runs in CI: the compose file and the collector, Prometheus and Grafana configs are parsed and
/// cross-checked instead.</summary>
public sealed class DockerComposeTests
{
    private static string DockerDir()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "QuantServe.sln"))) return Path.Combine(dir.FullName, "docker");
        throw new DirectoryNotFoundException("checkout root not found");
    }

    private static YamlMappingNode Load(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(Path.Combine(DockerDir(), file));
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Map(YamlNode node, string key) => (YamlMappingNode)((YamlMappingNode)node).Children[new YamlScalarNode(key)];
    private static YamlSequenceNode Seq(YamlNode node, string key) => (YamlSequenceNode)((YamlMappingNode)node).Children[new YamlScalarNode(key)];
    private static string Str(YamlNode node, string key) => ((YamlScalarNode)((YamlMappingNode)node).Children[new YamlScalarNode(key)]).Value!;
    private static bool Has(YamlNode node, string key) => ((YamlMappingNode)node).Children.ContainsKey(new YamlScalarNode(key));

    [Fact]
    public void Compose_Services_PortsVolumesHealthchecksAndFilesExist()
    {
        var compose = Load("docker-compose.yml");
        var services = Map(compose, "services");
        var names = services.Children.Keys.Select(k => ((YamlScalarNode)k).Value).ToHashSet();
        Assert.Equal(new HashSet<string?> { "quantserve", "otel-collector", "prometheus", "grafana" }, names);

        var qs = Map(services, "quantserve");
        var build = Map(qs, "build");
        Assert.True(File.Exists(Path.Combine(DockerDir(), Str(build, "context"), Str(build, "dockerfile"))));
        Assert.Contains("8080:8080", Seq(qs, "ports").Select(p => ((YamlScalarNode)p).Value));
        Assert.Equal("http://otel-collector:4317", Str(Map(qs, "environment"), "OTEL_EXPORTER_OTLP_ENDPOINT"));
        var qsVolumes = Seq(qs, "volumes").Select(v => ((YamlScalarNode)v).Value!).ToList();
        Assert.Contains(qsVolumes, v => v.EndsWith(":/data"));
        Assert.Contains(qsVolumes, v => v.Contains(":/models"));

        var declaredVolumes = Map(compose, "volumes").Children.Keys.Select(k => ((YamlScalarNode)k).Value).ToHashSet();
        foreach (var (key, service) in services.Children)
        {
            string name = ((YamlScalarNode)key).Value!;
            Assert.True(Has(service, "healthcheck"), $"{name} has no healthcheck");
            Assert.NotEmpty(Seq(Map(service, "healthcheck"), "test"));
            if (Has(service, "depends_on"))
            {
                var deps = Has(service, "depends_on") && ((YamlMappingNode)service).Children[new YamlScalarNode("depends_on")] is YamlMappingNode m
                    ? m.Children.Keys.Select(k => ((YamlScalarNode)k).Value) : Seq(service, "depends_on").Select(d => ((YamlScalarNode)d).Value);
                foreach (var d in deps) Assert.Contains(d, names);
            }
            if (!Has(service, "volumes")) continue;
            foreach (var v in Seq(service, "volumes").Select(v => ((YamlScalarNode)v).Value!))
            {
                string source = v.Split(':')[0];
                if (source.StartsWith('.'))
                {
                    if (source == "./models") continue; // the user's models, created by them
                    Assert.True(File.Exists(Path.Combine(DockerDir(), source)) || Directory.Exists(Path.Combine(DockerDir(), source)), $"{name}: {source} missing");
                }
                else Assert.Contains(source, declaredVolumes);
            }
        }
    }

    [Fact]
    public void Prometheus_ScrapesQuantServeAndCollectorOnExposedPorts()
    {
        var prom = Load("prometheus.yml");
        var targets = Seq(prom, "scrape_configs").Cast<YamlMappingNode>()
            .ToDictionary(j => Str(j, "job_name"), j => Seq(Seq(j, "static_configs")[0], "targets").Select(t => ((YamlScalarNode)t).Value!).Single());
        Assert.Equal("quantserve:8080", targets["quantserve"]);
        Assert.Equal("otel-collector:8889", targets["otel-collector"]);

        var collector = Load("otel-collector.yaml");
        Assert.Equal("0.0.0.0:8889", Str(Map(Map(collector, "exporters"), "prometheus"), "endpoint"));
        var pipelines = Map(Map(collector, "service"), "pipelines");
        foreach (var (_, pipeline) in pipelines.Children)
        {
            foreach (var r in Seq(pipeline, "receivers")) Assert.True(Has(Map(collector, "receivers"), ((YamlScalarNode)r).Value!));
            foreach (var e in Seq(pipeline, "exporters")) Assert.True(Has(Map(collector, "exporters"), ((YamlScalarNode)e).Value!));
        }
        Assert.Equal("0.0.0.0:4317", Str(Map(Map(Map(collector, "receivers"), "otlp"), "protocols") is var p ? Map(p, "grpc") : p, "endpoint"));
    }

    [Fact]
    public void Grafana_DashboardUsesProvisionedDatasourceAndQuantServeMetrics()
    {
        var ds = Load(Path.Combine("grafana", "provisioning", "datasources", "datasource.yml"));
        string uid = Str(Seq(ds, "datasources")[0], "uid");
        Assert.Equal("http://prometheus:9090", Str(Seq(ds, "datasources")[0], "url"));
        var providers = Load(Path.Combine("grafana", "provisioning", "dashboards", "dashboards.yml"));
        Assert.Equal("/var/lib/grafana/dashboards", Str(Map(Seq(providers, "providers")[0], "options"), "path"));

        var dashboard = JsonNode.Parse(File.ReadAllText(Path.Combine(DockerDir(), "grafana", "dashboards", "quantserve.json")))!;
        var exprs = dashboard["panels"]!.AsArray().SelectMany(p =>
        {
            Assert.Equal(uid, (string?)p!["datasource"]!["uid"]);
            return p["targets"]!.AsArray().Select(t => (string)t!["expr"]!);
        }).ToList();
        string all = string.Join("\n", exprs);
        foreach (var metric in new[]
                 {
                     "quantserve_model_vram_bytes", "quantserve_quantization_perplexity_ratio", "quantserve_quantization_kl_divergence",
                     "quantserve_quantization_top1_agreement", "quantserve_quantization_degradation_pct", "quantserve_generated_tokens_total",
                     "gen_ai_server_time_to_first_token_seconds_bucket", "quantserve_quantization_queue_depth",
                 })
            Assert.Contains(metric, all);
        foreach (var e in exprs) Assert.Equal(e.Count(c => c == '('), e.Count(c => c == ')'));
        Assert.DoesNotMatch(new Regex(@"\{\{\s*\}\}"), all);
    }
}
