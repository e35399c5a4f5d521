using System.Globalization;

namespace QuantServe.Engine.Gpu;

/// <summary>What <c>QuantServe:Device</c> asks for.</summary>
public enum DeviceKind
{
    /// <summary>The first CUDA device when a driver and device are present, else the CPU.</summary>
    Auto,
    /// <summary>Always the CPU.</summary>
    Cpu,
    /// <summary>A specific CUDA device; failing to open it is an error.</summary>
    Cuda,
}

/// <summary>A parsed device setting: <c>auto</c>, <c>cpu</c>, <c>cuda</c> (= <c>cuda:0</c>) or <c>cuda:N</c> (case-insensitive).</summary>
public sealed record DeviceSelection(DeviceKind Kind, int Ordinal = 0)
{
    /// <summary>The default: <c>auto</c>.</summary>
    public static DeviceSelection Auto { get; } = new(DeviceKind.Auto);

    /// <summary>Parses <paramref name="text"/> (null or blank = auto); throws <see cref="FormatException"/> naming the accepted forms.</summary>
    public static DeviceSelection Parse(string? text)
    {
        var t = text?.Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(t) || t == "auto") return Auto;
        if (t == "cpu") return new(DeviceKind.Cpu);
        if (t == "cuda" || t == "gpu") return new(DeviceKind.Cuda, 0);
        if (t.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(t.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n < 1024)
            return new(DeviceKind.Cuda, n);
        throw new FormatException($"device '{text}' is not one of auto, cpu, cuda, cuda:N (N a device ordinal)");
    }

    /// <inheritdoc />
    public override string ToString() => Kind switch { DeviceKind.Cuda => $"cuda:{Ordinal}", _ => Kind.ToString().ToLowerInvariant() };
}
