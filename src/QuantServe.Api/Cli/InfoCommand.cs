using System.CommandLine;
using System.Globalization;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Cli;

/// <summary><c>quantserve info --model PATH</c>: architecture, hyper-parameters and the tensor table of a model.</summary>
public static class InfoCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = CliOptions.Model();
        var command = new Command("info", "Describe a model: architecture, hyper-parameters, tensors, parameter count and bytes.") { model };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            using var loaded = ModelLoader.Load(CliOptions.ResolveModel(parse.GetValue(model)));
            Write(loaded, output);
            return 0;
        });
        return command;
    }

    /// <summary>Writes the description of <paramref name="m"/>.</summary>
    public static void Write(LoadedModel m, TextWriter o)
    {
        var c = m.Config;
        var inv = CultureInfo.InvariantCulture;
        o.WriteLine($"model:        {m.SourcePath}");
        o.WriteLine($"format:       {m.SourceFormat}");
        o.WriteLine($"architecture: {c.Architecture}");
        o.WriteLine(string.Create(inv, $"hyper-parameters: dim={c.Dim} hidden_dim={c.HiddenDim} layers={c.Layers} heads={c.Heads} kv_heads={c.KvHeads} head_dim={c.HeadDim} vocab={c.VocabSize} context={c.ContextLength}"));
        o.WriteLine(string.Create(inv, $"rope: theta={c.RopeTheta} style={c.Rope} scale={c.RopeScale}  norm_eps={c.NormEps}  tied_embeddings={(c.TiedEmbeddings ? "yes" : "no")}"));
        o.WriteLine($"tokenizer:    {m.Tokenizer.GetType().Name}, {m.Tokenizer.VocabSize} tokens, bos={m.Tokenizer.BosId} eos={m.Tokenizer.EosId}");
        o.WriteLine($"precision:    {m.Precision}");
        o.WriteLine(string.Create(inv, $"parameters:   {m.ParameterCount:N0}"));
        o.WriteLine(string.Create(inv, $"bytes:        {m.WeightBytes:N0} ({m.WeightBytes / (1024.0 * 1024.0):F2} MiB, {m.WeightBytes * 8.0 / m.ParameterCount:F2} bits/parameter)"));
        foreach (var (k, v) in m.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            o.WriteLine($"meta {k} = {v}");

        var rows = new List<(string Name, string Shape, string Format, long Bytes)>();
        void Vector(string name, float[]? v)
        {
            if (v is not null) rows.Add((name, v.Length.ToString(inv), "F32", v.Length * 4L));
        }
        var w = m.Weights;
        rows.Add(Row(w.TokenEmbedding));
        for (int i = 0; i < w.Layers.Length; i++)
        {
            var l = w.Layers[i];
            Vector($"blk.{i}.attn_norm", l.AttnNorm);
            foreach (var mat in new[] { l.Wq, l.Wk, l.Wv, l.Wo }) rows.Add(Row(mat));
            Vector($"blk.{i}.attn_q.bias", l.Bq);
            Vector($"blk.{i}.attn_k.bias", l.Bk);
            Vector($"blk.{i}.attn_v.bias", l.Bv);
            Vector($"blk.{i}.ffn_norm", l.FfnNorm);
            foreach (var mat in new[] { l.Gate, l.Up, l.Down }) rows.Add(Row(mat));
        }
        Vector("output_norm", w.FinalNorm);
        if (!ReferenceEquals(w.Output, w.TokenEmbedding)) rows.Add(Row(w.Output));

        int nameWidth = Math.Max(4, rows.Max(r => r.Name.Length));
        int shapeWidth = Math.Max(5, rows.Max(r => r.Shape.Length));
        int formatWidth = Math.Max(6, rows.Max(r => r.Format.Length));
        o.WriteLine();
        o.WriteLine($"{"name".PadRight(nameWidth)}  {"shape".PadRight(shapeWidth)}  {"format".PadRight(formatWidth)}  {"bytes",12}");
        foreach (var r in rows)
            o.WriteLine($"{r.Name.PadRight(nameWidth)}  {r.Shape.PadRight(shapeWidth)}  {r.Format.PadRight(formatWidth)}  {r.Bytes.ToString(inv),12}");
        o.WriteLine(string.Create(inv, $"{rows.Count} tensors{(c.TiedEmbeddings ? " (output head tied to the token embedding)" : "")}"));
    }

    private static (string, string, string, long) Row(Engine.Tensors.WeightMatrix m)
        => (m.Name, string.Create(CultureInfo.InvariantCulture, $"{m.Rows}x{m.Cols}"), m.Format.Name, m.ByteCount);
}
