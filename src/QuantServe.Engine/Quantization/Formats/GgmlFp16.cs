using System.Runtime.CompilerServices;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// IEEE binary16 ⇄ binary32 conversion exactly as ggml does it (<c>GGML_FP32_TO_FP16</c> / <c>GGML_FP16_TO_FP32</c>):
/// float → half rounds to nearest, ties to even, overflows to ±∞, keeps subnormals; every NaN becomes the quiet NaN
/// <c>sign | 0x7E00</c>. half → float is exact. Block scales of every ggml format pass through here, so quantized
/// bytes match llama.cpp's bit for bit.
/// </summary>
public static class GgmlFp16
{
    // 256 KiB: the same lookup ggml's CPU backend uses; a block scale costs one L2-resident load in the dot kernels.
    private static readonly float[] Table = BuildTable();

    /// <summary>The pinned 65536-entry half → float table, for kernels that index it directly.</summary>
    internal static readonly unsafe float* TablePointer = (float*)Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(Table));

    private static float[] BuildTable()
    {
        var t = GC.AllocateUninitializedArray<float>(65536, pinned: true);
        for (int h = 0; h < 65536; h++) t[h] = (float)BitConverter.UInt16BitsToHalf((ushort)h);
        return t;
    }

    /// <summary>The exact float value of the half with bit pattern <paramref name="h"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort h) => Unsafe.Add(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(Table), h);

    /// <summary>The bit pattern of <paramref name="f"/> rounded to half precision (nearest, ties to even).</summary>
    public static ushort FromFloat(float f)
    {
        if (float.IsNaN(f)) return (ushort)((BitConverter.SingleToUInt32Bits(f) >> 16 & 0x8000) | 0x7E00);
        return BitConverter.HalfToUInt16Bits((Half)f);
    }

    /// <summary>Converts every element of <paramref name="source"/> (half bit patterns) to float.</summary>
    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is shorter than source", nameof(destination));
        for (int i = 0; i < source.Length; i++) destination[i] = ToFloat(source[i]);
    }
}
