using System.Runtime.InteropServices;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>Shared inputs for the tests of QuantServe's own formats: the names covered and matrices quantized into native memory.</summary>
internal static unsafe class RtnTestData
{
    public static readonly string[] Names =
    [
        "int8", "int8-asym", "int8-pt", "int8-g128", "int4-g32", "int4-g32-asym", "int4-g128", "int4-g48-asym", "int4",
        "int3-g128", "int3-g64-asym", "int3", "int2-g64-asym", "int2-g16", "nf4", "nf4-dq", "fp4", "llm-int8",
    ];

    public static TheoryData<string> Formats => new(Names);

    public static RtnFormat Format(string name) =>
        TensorFormats.ForName(name) as RtnFormat ?? throw new InvalidOperationException($"{name} is not an RTN format");

    /// <summary>A <paramref name="rows"/> × <paramref name="cols"/> matrix quantized to <paramref name="format"/>, with the
    /// native buffer that holds it (free it with <see cref="NativeMemory.Free"/>).</summary>
    public static WeightMatrix Quantize(RtnFormat format, float[] values, int rows, int cols, out IntPtr buffer)
    {
        long bytes = Math.Max(1, format.RowBytes(cols) * rows);
        byte* p = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
        buffer = (IntPtr)p;
        var source = new WeightMatrix("source", TensorFormats.ForName("F32")!, rows, cols, Pin(values));
        format.QuantizeMatrix(source, new Span<byte>(p, (int)bytes));
        return format.CreateMatrix("test", rows, cols, p);
    }

    private static readonly List<GCHandle> Pins = [];

    private static byte* Pin(float[] values)
    {
        var h = GCHandle.Alloc(values, GCHandleType.Pinned);
        lock (Pins) Pins.Add(h);
        return (byte*)h.AddrOfPinnedObject();
    }
}
