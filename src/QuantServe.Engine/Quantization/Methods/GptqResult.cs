namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// One GPTQ-quantized matrix of <see cref="Rows"/> × <see cref="Cols"/> in the original column order. Column c of row r
/// dequantizes to <c>Scales[r·Groups + g] · (Q[r·Cols + c] − Zeros[r·Groups + g])</c> with <c>g = GIdx[c]</c>.
/// </summary>
public sealed class GptqResult
{
    internal GptqResult(GptqOptions options, int rows, int cols, int groups, byte[] q, float[] scales, int[] zeros, int[] gIdx, int[]? perm)
    {
        Options = options; Rows = rows; Cols = cols; Groups = groups; Q = q; Scales = scales; Zeros = zeros; GIdx = gIdx; Permutation = perm;
    }

    /// <summary>The settings used.</summary>
    public GptqOptions Options { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features.</summary>
    public int Cols { get; }

    /// <summary>Groups per row.</summary>
    public int Groups { get; }

    /// <summary>Quantized values in [0, 2^bits − 1], row-major in the original column order.</summary>
    public byte[] Q { get; }

    /// <summary>Per row and group, the grid step.</summary>
    public float[] Scales { get; }

    /// <summary>Per row and group, the integer zero point.</summary>
    public int[] Zeros { get; }

    /// <summary>Per input column, its group (g_idx); with act-order groups follow the processing order.</summary>
    public int[] GIdx { get; }

    /// <summary>With act-order, the processing order: position i processed original column Permutation[i]; otherwise null.</summary>
    public int[]? Permutation { get; }

    /// <summary>The dequantized weight of row <paramref name="r"/>, column <paramref name="c"/>.</summary>
    public float Dequantize(int r, int c)
    {
        int g = r * Groups + GIdx[c];
        return Scales[g] * (Q[r * Cols + c] - Zeros[g]);
    }

    /// <summary>The whole dequantized matrix, row-major.</summary>
    public float[] Dequantize()
    {
        var w = new float[Rows * Cols];
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Cols; c++) w[r * Cols + c] = Dequantize(r, c);
        return w;
    }
}
