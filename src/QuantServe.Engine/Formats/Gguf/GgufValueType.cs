namespace QuantServe.Engine.Formats.Gguf;

/// <summary>Metadata value types with GGUF's numeric ids (<c>gguf_type</c>).</summary>
public enum GgufValueType : uint
{
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 0,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 1,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 2,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 3,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 4,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 5,
    /// <summary>IEEE-754 binary32.</summary>
    Float32 = 6,
    /// <summary>One byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>uint64 byte length followed by UTF-8 bytes (no terminator).</summary>
    String = 8,
    /// <summary>uint32 element type, uint64 count, then the elements (arrays may nest).</summary>
    Array = 9,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 10,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 11,
    /// <summary>IEEE-754 binary64.</summary>
    Float64 = 12,
}

/// <summary>Sizes of the GGUF value types.</summary>
public static class GgufValueTypes
{
    /// <summary>Whether <paramref name="t"/> is one of the thirteen defined ids.</summary>
    public static bool IsDefined(GgufValueType t) => (uint)t <= (uint)GgufValueType.Float64;

    /// <summary>Bytes of a fixed-size scalar, or 0 for strings and arrays.</summary>
    public static int ScalarSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    /// <summary>The fewest bytes one value of type <paramref name="t"/> can occupy in a file
    /// (a string's length field, an array's type and count): used to reject counts that cannot fit before allocating.</summary>
    public static int MinimumEncodedSize(GgufValueType t) => t switch
    {
        GgufValueType.String => 8,
        GgufValueType.Array => 12,
        _ => ScalarSize(t),
    };

    /// <summary>Whether <paramref name="t"/> is an integer type.</summary>
    public static bool IsInteger(GgufValueType t) => t is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16
        or GgufValueType.Int16 or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;
}
