namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>
/// A template that cannot be parsed or rendered: syntax errors, type errors during rendering, and messages the
/// template itself raises through <c>raise_exception(msg)</c> (<see cref="RaisedByTemplate"/>). The message names
/// the 1-based line and column in the template source.
/// </summary>
public sealed class JinjaException : Exception
{
    /// <summary>Creates the exception for a problem at <paramref name="line"/>:<paramref name="column"/>.</summary>
    public JinjaException(string problem, int line, int column, bool raisedByTemplate = false)
        : base(raisedByTemplate ? $"chat template raised an error: {problem} (template line {line}, column {column})"
            : $"chat template error at line {line}, column {column}: {problem}")
    {
        Problem = problem;
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }

    /// <summary>The problem without the position.</summary>
    public string Problem { get; }

    /// <summary>1-based line in the template source.</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source.</summary>
    public int Column { get; }

    /// <summary>True when the template called <c>raise_exception</c> (the input, not the template, is at fault).</summary>
    public bool RaisedByTemplate { get; }

    internal static JinjaException At(string source, int offset, string problem, bool raised = false)
    {
        int line = 1, col = 1;
        for (int i = 0; i < offset && i < source.Length; i++)
        {
            if (source[i] == '\n') { line++; col = 1; }
            else col++;
        }
        return new JinjaException(problem, line, col, raised);
    }
}

/// <summary>Raised inside evaluation without a position; the interpreter attaches the position of the node.</summary>
internal sealed class JinjaRuntimeError(string problem) : Exception(problem);
