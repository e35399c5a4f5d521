using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>F32 <see cref="WeightMatrix"/> instances over managed arrays, for models rewritten in place by a quantizer.</summary>
internal static class DenseMatrix
{
    /// <summary>A rows × cols F32 matrix holding a pinned copy of <paramref name="values"/> (row-major); the array travels
    /// as the matrix's state, which keeps it alive as long as the matrix.</summary>
    public static unsafe WeightMatrix F32(string name, int rows, int cols, ReadOnlySpan<float> values)
    {
        var data = GC.AllocateArray<float>(rows * cols, pinned: true);
        values[..(rows * cols)].CopyTo(data);
        var format = TensorFormats.ForGgml(GgmlType.F32) ?? throw new InvalidOperationException("F32 format is not registered");
        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref data[0]);
        return new WeightMatrix(name, format, rows, cols, p, cols * sizeof(float), data);
    }
}
