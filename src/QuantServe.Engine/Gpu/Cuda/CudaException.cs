namespace QuantServe.Engine.Gpu.Cuda;

/// <summary>A CUDA driver or NVRTC call failed: the message names the call, what it was doing and the library's error name.</summary>
public sealed class CudaException : Exception
{
    /// <summary>Creates the exception for <paramref name="call"/> failing with <paramref name="code"/> (<paramref name="name"/>).</summary>
    public CudaException(string call, int code, string name, string detail)
        : base($"{call} failed with {name} ({code}){(detail.Length > 0 ? ": " + detail : "")}")
    {
        Call = call;
        Code = code;
        ErrorName = name;
    }

    /// <summary>Creates an exception that is not tied to one error code (library missing, compile log).</summary>
    public CudaException(string message, Exception? inner = null) : base(message, inner)
    {
        Call = "";
        ErrorName = "";
    }

    /// <summary>The driver or NVRTC function that failed.</summary>
    public string Call { get; }

    /// <summary>The numeric result code (CUresult or nvrtcResult).</summary>
    public int Code { get; }

    /// <summary>The library's symbolic error name (e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>).</summary>
    public string ErrorName { get; }
}
