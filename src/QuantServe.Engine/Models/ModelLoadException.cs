namespace QuantServe.Engine.Models;

/// <summary>A model file or folder could not be read. The message always names the file and the problem.</summary>
public sealed class ModelLoadException : IOException
{
    /// <summary>Creates an error about <paramref name="file"/>.</summary>
    public ModelLoadException(string file, string problem, Exception? inner = null)
        : base($"{file}: {problem}", inner)
    {
        File = file;
        Problem = problem;
    }

    /// <summary>The file (or folder) at fault.</summary>
    public string File { get; }

    /// <summary>What is wrong with it.</summary>
    public string Problem { get; }
}
