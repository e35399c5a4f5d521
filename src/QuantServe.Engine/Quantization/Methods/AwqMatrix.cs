namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// One AWQ-quantized matrix of <see cref="Rows"/> × <see cref="Cols"/>: the codes of the scaled weights W·diag(s) (the
/// inverse scales are folded into the preceding norm or linear layer). Column c of row r dequantizes to
/// <c>Scales[r·Groups + g] · (Q[r·Cols + c] − Zeros[r·Groups + g])</c> with <c>g = c / GroupSize</c>; every scale is exactly
/// representable in fp16.
/// </summary>
public sealed class AwqMatrix
{
    /// <summary>Creates a matrix from its parts (checked for shape).</summary>
    public AwqMatrix(int bits, int groupSize, int rows, int cols, byte[] q, float[] scales, byte[] zeros)
    {
        int groups = (cols + groupSize - 1) / groupSize;
        if (q.Length != rows * cols || scales.Length != rows * groups || zeros.Length != rows * groups)
            throw new ArgumentException($"AWQ matrix {rows}x{cols} g{groupSize}: {q.Length} codes, {scales.Length} scales, {zeros.Length} zeros");
        Bits = bits; GroupSize = groupSize; Rows = rows; Cols = cols; Groups = groups; Q = q; Scales = scales; Zeros = zeros;
    }

    /// <summary>Bits per code.</summary>
    public int Bits { get; }

    /// <summary>Columns per group.</summary>
    public int GroupSize { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features.</summary>
    public int Cols { get; }

    /// <summary>Groups per row.</summary>
    public int Groups { get; }

    /// <summary>Codes in [0, 2^bits − 1], row-major.</summary>
    public byte[] Q { get; }

    /// <summary>Per row and group, the grid step (fp16-exact).</summary>
    public float[] Scales { get; }

    /// <summary>Per row and group, the zero point.</summary>
    public byte[] Zeros { get; }

    /// <summary>The dequantized weight at row <paramref name="r"/>, column <paramref name="c"/>.</summary>
    public float Dequantize(int r, int c)
    {
        int g = r * Groups + c / GroupSize;
        return Scales[g] * (Q[r * Cols + c] - Zeros[g]);
    }

    /// <summary>Row <paramref name="r"/> dequantized into <paramref name="destination"/>.</summary>
    public void DequantizeRow(int r, Span<float> destination)
    {
        for (int c = 0; c < Cols; c++) destination[c] = Dequantize(r, c);
    }

    /// <summary>
    /// The matrix in QuantServe's <c>intB-gG-asym</c> format (float scale and zero byte per group, packed codes), which
    /// dequantizes to exactly the same weights and runs on the integer kernels.
    /// </summary>
    public unsafe Tensors.WeightMatrix ToWeightMatrix(string name)
    {
        var format = (Formats.IntGroupFormat)(Tensors.TensorFormats.ForName($"int{Bits}-g{GroupSize}-asym")
            ?? throw new InvalidOperationException($"int{Bits}-g{GroupSize}-asym is not registered"));
        long rowBytes = format.RowBytes(Cols);
        var data = GC.AllocateArray<byte>(checked((int)(Rows * rowBytes)), pinned: true);
        Parallel.For(0, Rows, r => format.EncodeRow(Q.AsSpan(r * Cols, Cols), Scales.AsSpan(r * Groups, Groups),
            Zeros.AsSpan(r * Groups, Groups), data.AsSpan((int)(r * rowBytes), (int)rowBytes)));
        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref data[0]);
        return new Tensors.WeightMatrix(name, format, Rows, Cols, p, rowBytes, data);
    }
}
