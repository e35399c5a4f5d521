namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>Expression node; <see cref="Offset"/> locates it in the template for error messages.</summary>
internal abstract record Expr(int Offset);
internal sealed record LiteralExpr(int Offset, object? Value) : Expr(Offset);
internal sealed record NameExpr(int Offset, string Name) : Expr(Offset);
internal sealed record ListExpr(int Offset, List<Expr> Items, bool IsTuple) : Expr(Offset);
internal sealed record DictExpr(int Offset, List<(Expr Key, Expr Value)> Items) : Expr(Offset);
internal sealed record AttrExpr(int Offset, Expr Target, string Name) : Expr(Offset);
internal sealed record ItemExpr(int Offset, Expr Target, Expr Index) : Expr(Offset);
internal sealed record SliceExpr(int Offset, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Offset);
internal sealed record CallExpr(int Offset, Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Offset);
internal sealed record FilterExpr(int Offset, Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Offset);
internal sealed record TestExpr(int Offset, Expr Target, string Name, List<Expr> Args, bool Negated) : Expr(Offset);
internal sealed record UnaryExpr(int Offset, string Op, Expr Operand) : Expr(Offset);
internal sealed record BinaryExpr(int Offset, string Op, Expr Left, Expr Right) : Expr(Offset);
internal sealed record CompareExpr(int Offset, Expr First, List<(string Op, Expr Operand)> Rest) : Expr(Offset);
internal sealed record CondExpr(int Offset, Expr Condition, Expr Then, Expr? Else) : Expr(Offset);

/// <summary>Statement node.</summary>
internal abstract record Node(int Offset);
internal sealed record TextNode(int Offset, string Text) : Node(Offset);
internal sealed record OutputNode(int Offset, Expr Value) : Node(Offset);
internal sealed record IfNode(int Offset, List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else) : Node(Offset);
internal sealed record ForNode(int Offset, List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else) : Node(Offset);
/// <summary><c>{% set %}</c>: a name, several names (unpacking), or <c>ns.attr</c>; <see cref="Body"/> for block sets.</summary>
internal sealed record SetNode(int Offset, List<string> Targets, string? Attribute, Expr? Value, List<Node>? Body) : Node(Offset);
internal sealed record MacroNode(int Offset, string Name, List<(string Name, Expr? Default)> Params, List<Node> Body) : Node(Offset);
internal sealed record LoopControlNode(int Offset, bool IsBreak) : Node(Offset);
/// <summary>Renders its body (Hugging Face's <c>{% generation %}</c> marker, <c>{% filter %}</c> bodies).</summary>
internal sealed record BlockNode(int Offset, List<Node> Body, string? Filter) : Node(Offset);
