using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// One GGUF metadata value, typed exactly as stored so that writing it back reproduces the original bytes:
/// scalars keep their width and signedness (floats their bit patterns), strings keep their raw UTF-8 bytes,
/// arrays keep their element type — arrays of scalars as a typed array, arrays of strings as byte strings,
/// arrays of arrays as nested <see cref="GgufValue"/>s. Immutable.
/// </summary>
public sealed class GgufValue : IEquatable<GgufValue>
{
    private static readonly UTF8Encoding Lenient = new(false, false);
    private readonly ulong _bits;       // scalar payload, little-endian bit pattern zero-extended
    private readonly object? _payload;  // byte[] (string), typed scalar array, byte[][] (string array), GgufValue[] (nested)
    private string? _text;
    private string[]? _strings;

    private GgufValue(GgufValueType type, GgufValueType elementType, ulong bits, object? payload)
    {
        Type = type;
        ElementType = elementType;
        _bits = bits;
        _payload = payload;
    }

    /// <summary>The value's type.</summary>
    public GgufValueType Type { get; }

    /// <summary>For arrays, the element type; otherwise equal to <see cref="Type"/>.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>Whether this is an array.</summary>
    public bool IsArray => Type == GgufValueType.Array;

    /// <summary>Number of elements of an array (0 for scalars and strings).</summary>
    public int Count => _payload switch
    {
        _ when !IsArray => 0,
        Array a => a.Length,
        _ => 0,
    };

    // ---- construction -------------------------------------------------------------------------------------

    /// <summary>An unsigned 8-bit value.</summary>
    public static GgufValue FromUInt8(byte v) => Scalar(GgufValueType.UInt8, v);
    /// <summary>A signed 8-bit value.</summary>
    public static GgufValue FromInt8(sbyte v) => Scalar(GgufValueType.Int8, (byte)v);
    /// <summary>An unsigned 16-bit value.</summary>
    public static GgufValue FromUInt16(ushort v) => Scalar(GgufValueType.UInt16, v);
    /// <summary>A signed 16-bit value.</summary>
    public static GgufValue FromInt16(short v) => Scalar(GgufValueType.Int16, (ushort)v);
    /// <summary>An unsigned 32-bit value.</summary>
    public static GgufValue FromUInt32(uint v) => Scalar(GgufValueType.UInt32, v);
    /// <summary>A signed 32-bit value.</summary>
    public static GgufValue FromInt32(int v) => Scalar(GgufValueType.Int32, (uint)v);
    /// <summary>An unsigned 64-bit value.</summary>
    public static GgufValue FromUInt64(ulong v) => Scalar(GgufValueType.UInt64, v);
    /// <summary>A signed 64-bit value.</summary>
    public static GgufValue FromInt64(long v) => Scalar(GgufValueType.Int64, (ulong)v);
    /// <summary>A binary32 value (bit pattern kept, NaN payloads included).</summary>
    public static GgufValue FromFloat32(float v) => Scalar(GgufValueType.Float32, BitConverter.SingleToUInt32Bits(v));
    /// <summary>A binary64 value (bit pattern kept).</summary>
    public static GgufValue FromFloat64(double v) => Scalar(GgufValueType.Float64, BitConverter.DoubleToUInt64Bits(v));
    /// <summary>A boolean.</summary>
    public static GgufValue FromBool(bool v) => Scalar(GgufValueType.Bool, v ? 1UL : 0UL);
    /// <summary>A string, stored as UTF-8.</summary>
    public static GgufValue FromString(string v) => new(GgufValueType.String, GgufValueType.String, 0, Encoding.UTF8.GetBytes(v));
    /// <summary>A string given as its raw bytes (kept verbatim, even if they are not valid UTF-8).</summary>
    public static GgufValue FromUtf8(byte[] utf8) => new(GgufValueType.String, GgufValueType.String, 0, utf8);

    /// <summary>An array of uint8.</summary>
    public static GgufValue FromArray(byte[] v) => Arr(GgufValueType.UInt8, v);
    /// <summary>An array of int8.</summary>
    public static GgufValue FromArray(sbyte[] v) => Arr(GgufValueType.Int8, v);
    /// <summary>An array of uint16.</summary>
    public static GgufValue FromArray(ushort[] v) => Arr(GgufValueType.UInt16, v);
    /// <summary>An array of int16.</summary>
    public static GgufValue FromArray(short[] v) => Arr(GgufValueType.Int16, v);
    /// <summary>An array of uint32.</summary>
    public static GgufValue FromArray(uint[] v) => Arr(GgufValueType.UInt32, v);
    /// <summary>An array of int32.</summary>
    public static GgufValue FromArray(int[] v) => Arr(GgufValueType.Int32, v);
    /// <summary>An array of uint64.</summary>
    public static GgufValue FromArray(ulong[] v) => Arr(GgufValueType.UInt64, v);
    /// <summary>An array of int64.</summary>
    public static GgufValue FromArray(long[] v) => Arr(GgufValueType.Int64, v);
    /// <summary>An array of float32.</summary>
    public static GgufValue FromArray(float[] v) => Arr(GgufValueType.Float32, v);
    /// <summary>An array of float64.</summary>
    public static GgufValue FromArray(double[] v) => Arr(GgufValueType.Float64, v);
    /// <summary>An array of booleans.</summary>
    public static GgufValue FromArray(bool[] v) => Arr(GgufValueType.Bool, v.Select(b => b ? (byte)1 : (byte)0).ToArray());
    /// <summary>An array of strings.</summary>
    public static GgufValue FromArray(IEnumerable<string> v) => Arr(GgufValueType.String, v.Select(Encoding.UTF8.GetBytes).ToArray());

    /// <summary>An array of arrays (GGUF allows nesting); every element must itself be an array.</summary>
    public static GgufValue FromArray(IEnumerable<GgufValue> arrays)
    {
        var items = arrays.ToArray();
        if (items.Any(i => !i.IsArray)) throw new ArgumentException("a nested GGUF array may only contain arrays", nameof(arrays));
        return Arr(GgufValueType.Array, items);
    }

    private static GgufValue Scalar(GgufValueType t, ulong bits) => new(t, t, bits, null);
    private static GgufValue Arr(GgufValueType elementType, Array items) => new(GgufValueType.Array, elementType, 0, items);

    /// <summary>Builds a scalar from its little-endian bit pattern (reader use); bools must already be validated.</summary>
    internal static GgufValue ScalarFromBits(GgufValueType t, ulong bits) => Scalar(t, bits);

    /// <summary>Builds an array around a payload already typed as <see cref="PayloadType"/> expects (reader use).</summary>
    internal static GgufValue ArrayFromPayload(GgufValueType elementType, Array items) => Arr(elementType, items);

    /// <summary>The CLR array type holding elements of <paramref name="t"/>.</summary>
    internal static Type PayloadType(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Bool => typeof(byte[]),
        GgufValueType.Int8 => typeof(sbyte[]),
        GgufValueType.UInt16 => typeof(ushort[]),
        GgufValueType.Int16 => typeof(short[]),
        GgufValueType.UInt32 => typeof(uint[]),
        GgufValueType.Int32 => typeof(int[]),
        GgufValueType.Float32 => typeof(float[]),
        GgufValueType.UInt64 => typeof(ulong[]),
        GgufValueType.Int64 => typeof(long[]),
        GgufValueType.Float64 => typeof(double[]),
        GgufValueType.String => typeof(byte[][]),
        _ => typeof(GgufValue[]),
    };

    // ---- reading --------------------------------------------------------------------------------------------

    /// <summary>An integer value of any width as a signed 64-bit number; false for non-integers and uint64 values above <see cref="long.MaxValue"/>.</summary>
    public bool TryGetInteger(out long value)
    {
        value = Type switch
        {
            GgufValueType.UInt8 or GgufValueType.UInt16 or GgufValueType.UInt32 or GgufValueType.UInt64 => (long)_bits,
            GgufValueType.Int8 => (sbyte)(byte)_bits,
            GgufValueType.Int16 => (short)(ushort)_bits,
            GgufValueType.Int32 => (int)(uint)_bits,
            GgufValueType.Int64 => (long)_bits,
            _ => 0,
        };
        if (!GgufValueTypes.IsInteger(Type)) return false;
        return Type != GgufValueType.UInt64 || _bits <= long.MaxValue;
    }

    /// <summary>A float32/float64 value (or an integer, converted) as a double; false for other types.</summary>
    public bool TryGetFloat(out double value)
    {
        switch (Type)
        {
            case GgufValueType.Float32: value = BitConverter.UInt32BitsToSingle((uint)_bits); return true;
            case GgufValueType.Float64: value = BitConverter.UInt64BitsToDouble(_bits); return true;
            default:
                bool ok = TryGetInteger(out long i);
                value = i;
                return ok;
        }
    }

    /// <summary>A bool value; false when the value is not a bool.</summary>
    public bool TryGetBool(out bool value)
    {
        value = _bits != 0;
        return Type == GgufValueType.Bool;
    }

    /// <summary>The text of a string value (invalid UTF-8 shown as U+FFFD), or null for other types.</summary>
    public string? AsString() => Type == GgufValueType.String ? _text ??= Lenient.GetString((byte[])_payload!) : null;

    /// <summary>The raw bytes of a string value, or null.</summary>
    public byte[]? AsUtf8() => Type == GgufValueType.String ? (byte[])_payload! : null;

    /// <summary>The elements of an array whose element type maps to <typeparamref name="T"/> exactly
    /// (<c>float</c> for float32, <c>uint</c> for uint32, <c>byte</c> for uint8 and bool, …); null otherwise.
    /// The returned array is the value's own storage: do not modify it.</summary>
    public T[]? AsArray<T>() where T : unmanaged => IsArray ? _payload as T[] : null;

    /// <summary>The elements of an array of strings, decoded (cached), or null.</summary>
    public string[]? AsStringArray()
    {
        if (!IsArray || ElementType != GgufValueType.String) return null;
        return _strings ??= ((byte[][])_payload!).Select(b => Lenient.GetString(b)).ToArray();
    }

    /// <summary>The raw bytes of each element of an array of strings, or null.</summary>
    public IReadOnlyList<byte[]>? AsUtf8Array() => IsArray && ElementType == GgufValueType.String ? (byte[][])_payload! : null;

    /// <summary>The elements of an array of arrays, or null.</summary>
    public IReadOnlyList<GgufValue>? AsNestedArrays() => IsArray && ElementType == GgufValueType.Array ? (GgufValue[])_payload! : null;

    /// <summary>An array of any integer type converted to int64 (null if not an integer array or a uint64 element exceeds <see cref="long.MaxValue"/>).</summary>
    public long[]? ToInt64Array()
    {
        if (!IsArray) return null;
        switch (_payload)
        {
            case byte[] a when ElementType == GgufValueType.UInt8: return a.Select(x => (long)x).ToArray();
            case sbyte[] a: return a.Select(x => (long)x).ToArray();
            case ushort[] a: return a.Select(x => (long)x).ToArray();
            case short[] a: return a.Select(x => (long)x).ToArray();
            case uint[] a: return a.Select(x => (long)x).ToArray();
            case int[] a: return a.Select(x => (long)x).ToArray();
            case long[] a: return (long[])a.Clone();
            case ulong[] a: return a.Any(x => x > long.MaxValue) ? null : a.Select(x => (long)x).ToArray();
            default: return null;
        }
    }

    /// <summary>An array of float32 (copied) or float64 (narrowed) as floats, or null.</summary>
    public float[]? ToFloat32Array() => _payload switch
    {
        float[] a when IsArray => (float[])a.Clone(),
        double[] a when IsArray => a.Select(x => (float)x).ToArray(),
        _ => null,
    };

    // ---- writing --------------------------------------------------------------------------------------------

    /// <summary>Bytes of this value's encoding, excluding its own type id.</summary>
    internal long EncodedSize()
    {
        if (Type == GgufValueType.String) return 8L + ((byte[])_payload!).Length;
        if (!IsArray) return GgufValueTypes.ScalarSize(Type);
        long n = 12;
        switch (_payload)
        {
            case byte[][] s: foreach (var b in s) n += 8 + b.Length; break;
            case GgufValue[] v: foreach (var e in v) n += e.EncodedSize(); break;
            case Array a: n += (long)a.Length * GgufValueTypes.ScalarSize(ElementType); break;
        }
        return n;
    }

    /// <summary>Writes this value's encoding (without its type id), little-endian.</summary>
    internal void WriteTo(Stream s)
    {
        Span<byte> buf = stackalloc byte[8];
        if (Type == GgufValueType.String)
        {
            var bytes = (byte[])_payload!;
            BinaryPrimitives.WriteUInt64LittleEndian(buf, (ulong)bytes.Length);
            s.Write(buf);
            s.Write(bytes);
            return;
        }
        if (!IsArray)
        {
            int size = GgufValueTypes.ScalarSize(Type);
            BinaryPrimitives.WriteUInt64LittleEndian(buf, _bits);
            s.Write(buf[..size]);
            return;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(buf, (uint)ElementType);
        s.Write(buf[..4]);
        BinaryPrimitives.WriteUInt64LittleEndian(buf, (ulong)Count);
        s.Write(buf);
        switch (_payload)
        {
            case byte[][] strings:
                foreach (var b in strings)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(buf, (ulong)b.Length);
                    s.Write(buf);
                    s.Write(b);
                }
                break;
            case GgufValue[] nested:
                foreach (var e in nested) e.WriteTo(s);
                break;
            default:
                WriteScalarArray(s);
                break;
        }
    }

    private void WriteScalarArray(Stream s)
    {
        // The machine is little-endian (checked by GgufFile), so the array's memory is its file encoding.
        ReadOnlySpan<byte> raw = _payload switch
        {
            byte[] a => a,
            sbyte[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            ushort[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            short[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            uint[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            int[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            float[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            ulong[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            long[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            double[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            _ => throw new InvalidOperationException($"unexpected GGUF array payload {_payload?.GetType()}"),
        };
        s.Write(raw);
    }

    // ---- equality and display ---------------------------------------------------------------------------------

    /// <summary>Structural, bit-exact equality (same types, same bytes).</summary>
    public bool Equals(GgufValue? other)
    {
        if (other is null) return false;
        if (ReferenceEquals(this, other)) return true;
        if (Type != other.Type || ElementType != other.ElementType || _bits != other._bits) return false;
        return (_payload, other._payload) switch
        {
            (null, null) => true,
            (byte[][] a, byte[][] b) => a.Length == b.Length && a.Zip(b).All(p => p.First.AsSpan().SequenceEqual(p.Second)),
            (GgufValue[] a, GgufValue[] b) => a.Length == b.Length && a.Zip(b).All(p => p.First.Equals(p.Second)),
            (Array a, Array b) when a.GetType() == b.GetType() => RawBytes(a).SequenceEqual(RawBytes(b)),
            _ => false,
        };
    }

    private static ReadOnlySpan<byte> RawBytes(Array a) => MemoryMarshal.CreateReadOnlySpan(
        ref MemoryMarshal.GetArrayDataReference(a), Buffer.ByteLength(a));

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as GgufValue);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Type, ElementType, _bits, Count);

    /// <summary>A short human-readable rendering: the scalar, the string, or the first elements of an array.</summary>
    public override string ToString()
    {
        if (Type == GgufValueType.String) return AsString()!;
        if (!IsArray)
        {
            if (TryGetBool(out bool b) && Type == GgufValueType.Bool) return b ? "true" : "false";
            if (Type == GgufValueType.UInt64) return _bits.ToString(CultureInfo.InvariantCulture);
            if (TryGetInteger(out long i)) return i.ToString(CultureInfo.InvariantCulture);
            TryGetFloat(out double d);
            return Type == GgufValueType.Float32 ? ((float)d).ToString("R", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture);
        }
        const int shown = 8;
        IEnumerable<string> items = ElementType switch
        {
            GgufValueType.String => AsStringArray()!.Take(shown).Select(s => $"\"{s}\""),
            GgufValueType.Array => AsNestedArrays()!.Take(shown).Select(v => v.ToString()),
            _ => Enumerable.Range(0, Math.Min(shown, Count)).Select(ElementText),
        };
        string more = Count > shown ? $", … ({Count} items)" : "";
        return $"[{string.Join(", ", items)}{more}]";
    }

    private string ElementText(int i) => _payload switch
    {
        byte[] a when ElementType == GgufValueType.Bool => a[i] != 0 ? "true" : "false",
        byte[] a => a[i].ToString(CultureInfo.InvariantCulture),
        sbyte[] a => a[i].ToString(CultureInfo.InvariantCulture),
        ushort[] a => a[i].ToString(CultureInfo.InvariantCulture),
        short[] a => a[i].ToString(CultureInfo.InvariantCulture),
        uint[] a => a[i].ToString(CultureInfo.InvariantCulture),
        int[] a => a[i].ToString(CultureInfo.InvariantCulture),
        float[] a => a[i].ToString("R", CultureInfo.InvariantCulture),
        ulong[] a => a[i].ToString(CultureInfo.InvariantCulture),
        long[] a => a[i].ToString(CultureInfo.InvariantCulture),
        double[] a => a[i].ToString("R", CultureInfo.InvariantCulture),
        _ => "?",
    };
}
