namespace QuantServe.Api.OpenAi.Models;

/// <summary>GET /v1/models response.</summary>
/// <param name="Object">Always <c>list</c>.</param>
/// <param name="Data">The models.</param>
public sealed record ModelList(string Object, IReadOnlyList<ModelObject> Data);

/// <summary>A served model: OpenAI's fields plus QuantServe metadata.</summary>
/// <param name="Id">Id to pass as <c>model</c>.</param>
/// <param name="Object">Always <c>model</c>.</param>
/// <param name="Created">Unix seconds of the model file's last change.</param>
/// <param name="OwnedBy">Always <c>quantserve</c>.</param>
/// <param name="Format"><c>gguf</c>, <c>safetensors</c>, <c>llama2c</c> or <c>quantserve</c>.</param>
/// <param name="Precision">Weight storage format (F16, Q4_K, …) or <c>mixed</c>; null until loaded.</param>
/// <param name="Parameters">Parameter count; null until loaded.</param>
/// <param name="Bytes">Weight bytes when loaded, else bytes on disk.</param>
/// <param name="ContextLength">Trained context length; null until loaded.</param>
/// <param name="Loaded">Whether the weights are in memory now.</param>
/// <param name="Device">Where the loaded model runs (<c>cpu</c> or <c>cuda:N</c>); null until loaded.</param>
public sealed record ModelObject(
    string Id,
    string Object,
    long Created,
    string OwnedBy,
    string Format,
    string? Precision,
    long? Parameters,
    long Bytes,
    int? ContextLength,
    bool Loaded,
    string? Device = null);
