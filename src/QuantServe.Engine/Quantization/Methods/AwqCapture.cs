using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// The calibration statistics AWQ needs of one layer's four linear inputs (q/k/v, attention output, gate/up, down): the
/// mean |x| per channel over every token, and the second moment <c>Σ x xᵀ</c> over every <c>stride</c>-th token.
/// </summary>
internal sealed class AwqCapture : IActivationObserver
{
    private readonly int _layer, _stride;
    private readonly double[][] _abs;
    private readonly long[] _seen = new long[4];
    private readonly List<float>[] _sample = [[], [], [], []];

    public AwqCapture(int layer, ModelConfig c, int stride)
    {
        _layer = layer;
        _stride = Math.Max(1, stride);
        _abs = [new double[c.Dim], new double[c.QDim], new double[c.Dim], new double[c.HiddenDim]];
    }

    public void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width)
    {
        if (layer != _layer) return;
        int k = (int)input;
        var abs = _abs[k];
        for (int t = 0; t < tokens; t++)
        {
            var x = rows.Slice(t * width, width);
            for (int c = 0; c < width; c++) abs[c] += MathF.Abs(x[c]);
            if (_seen[k]++ % _stride == 0) _sample[k].AddRange(x);
        }
    }

    /// <summary>Mean |x| per channel of input <paramref name="k"/>.</summary>
    public float[] Mean(int k) => _abs[k].Select(v => (float)(v / Math.Max(1, _seen[k]))).ToArray();

    /// <summary>The second moment of the sampled tokens of input <paramref name="k"/>, cols × cols (scaled by 2/N, which
    /// no comparison depends on).</summary>
    public float[] Moment(int k)
    {
        int width = _abs[k].Length;
        var rows = _sample[k].ToArray();
        var h = new GptqHessian(width);
        if (rows.Length > 0) h.Add(rows, rows.Length / width);
        return h.ToMatrix().Select(v => (float)v).ToArray();
    }
}
