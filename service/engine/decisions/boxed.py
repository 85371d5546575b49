"""Boxed expressions (DMN 1.5 chapter 10.2 and 10.5): each XML element compiled once into a closure.

A compiled boxed expression is ``fn(scope, strict) -> value``; ``strict`` is passed down to decision
tables. Invalid FEEL inside raises :class:`DecisionEvaluationError` when (and only when) evaluated.
"""
from __future__ import annotations

from typing import Any, Callable

from .errors import DecisionEvaluationError, Problem
from .feel import Expression, FeelSyntaxError, Function, Scope
from .interp import iteration_values, state
from .java import external_function
from .tables import LoadContext, evaluate_table, load_table
from .types import coerce
from .xml import child, children, local, text_of

Boxed = Callable[[Scope, bool], Any]
EXPRESSION_TAGS = {"literalExpression", "context", "invocation", "list", "relation", "functionDefinition",
                   "decisionTable", "conditional", "filter", "for", "some", "every"}


def expression_child(el):
    """The first boxed-expression child of an element, or None."""
    if el is None:
        return None
    return next((c for c in el if local(c.tag) in EXPRESSION_TAGS), None)


def compile_boxed(el, owner: str, label: str, ctx: LoadContext) -> Boxed:
    """A boxed expression element as a closure; None (no element) evaluates to null."""
    if el is None:
        return lambda s, strict: None
    fn = _COMPILERS[local(el.tag)](el, owner, label, ctx)
    type_ref = el.get("typeRef") if local(el.tag) != "decisionTable" else None
    if not type_ref:
        return fn
    # standard mode: the expression's declared type coerces its value (DMN 1.5 10.3.2.9.4)
    return lambda s, strict: fn(s, strict) if strict else _typed(fn(s, strict), type_ref, ctx)


def _error(owner: str, message: str) -> Boxed:
    def fail(s, strict):
        raise DecisionEvaluationError(owner, owner, message)
    return fail


def _literal(el, owner, label, ctx) -> Boxed:
    text = text_of(el)
    if not text:
        return lambda s, strict: None
    try:
        expr = Expression(text, ctx.names)
    except FeelSyntaxError as e:
        ctx.feel_problems.append(Problem(ctx.filename, el.get("id") or owner, f"{label!r}: {e.message}"))
        return _error(owner, f"{label!r}: {e.message}")
    return lambda s, strict: expr.run(s)


def _typed(value, type_ref, ctx: LoadContext):
    return coerce(value, type_ref, ctx.types) if type_ref else value


def _context(el, owner, label, ctx) -> Boxed:
    entries = []
    for entry in children(el, "contextEntry"):
        var = child(entry, "variable")
        name = var.get("name") if var is not None else None
        type_ref = var.get("typeRef") if var is not None else None
        entries.append((name, type_ref, compile_boxed(expression_child(entry), owner, name or label, ctx)))

    def run(s, strict):
        out: dict = {}
        inner = s.child(out)
        for name, type_ref, fn in entries:
            value = _typed(fn(inner, strict), type_ref, ctx)
            if name is None:
                return value  # the final result entry
            out[name] = value
        return out
    return run


def _invocation(el, owner, label, ctx) -> Boxed:
    callee = compile_boxed(expression_child(el), owner, label, ctx)
    bindings = []
    for b in children(el, "binding"):
        param = child(b, "parameter")
        bindings.append((param.get("name"), compile_boxed(expression_child(b), owner, label, ctx)))

    def run(s, strict):
        fn = callee(s, strict)
        if not isinstance(fn, Function):
            return None
        return fn.call(None, {name: value(s, strict) for name, value in bindings})
    return run


def _list(el, owner, label, ctx) -> Boxed:
    items = [compile_boxed(c, owner, label, ctx) for c in el if local(c.tag) in EXPRESSION_TAGS]
    return lambda s, strict: [i(s, strict) for i in items]


def _relation(el, owner, label, ctx) -> Boxed:
    columns = [c.get("name") for c in children(el, "column")]
    rows = [[compile_boxed(c, owner, label, ctx) for c in row if local(c.tag) in EXPRESSION_TAGS]
            for row in children(el, "row")]
    for row in rows:
        if len(row) != len(columns):
            return _error(owner, f"{label!r}: a relation row has {len(row)} cells for {len(columns)} columns")
    return lambda s, strict: [{c: cell(s, strict) for c, cell in zip(columns, row)} for row in rows]


def _function_definition(el, owner, label, ctx) -> Boxed:
    params = [(p.get("name"), p.get("typeRef")) for p in children(el, "formalParameter")]
    names = [p for p, _ in params]
    kind = (el.get("kind") or "FEEL").upper()
    body = compile_boxed(expression_child(el), owner, label, ctx)
    if kind == "JAVA":
        return lambda s, strict: external_function(names, {"java": body(s, strict)})
    if kind != "FEEL":
        return lambda s, strict: None
    result_type = el.get("typeRef")

    def run(s, strict):
        def impl(args, named):
            bound = _bind(params, args, named, ctx)
            if bound is None:
                return None
            return _typed(body(s.child(bound), strict), result_type, ctx)
        return Function(label, names, impl, [t for _, t in params], result_type)
    return run


def _bind(params, args, named, ctx: LoadContext) -> dict | None:
    """Arguments by parameter name, each coerced to the parameter's type (a mismatch makes the call null)."""
    if named is not None:
        if not set(named) <= {p for p, _ in params}:
            return None
        values = [named.get(p) for p, _ in params]
    else:
        if len(args) != len(params):
            return None
        values = list(args)
    bound = {}
    for (p, t), v in zip(params, values):
        c = _typed(v, t, ctx)
        if v is not None and c is None:
            return None
        bound[p] = c
    return bound


def _decision_table(el, owner, label, ctx) -> Boxed:
    table = load_table(el, owner, label, ctx)
    return lambda s, strict: evaluate_table(table, s, strict).value


def _part(el, name, owner, label, ctx) -> Boxed:
    return compile_boxed(expression_child(child(el, name)), owner, label, ctx)


def _conditional(el, owner, label, ctx) -> Boxed:
    cond, then, other = (_part(el, n, owner, label, ctx) for n in ("if", "then", "else"))
    def run(s, strict):
        c = cond(s, strict)
        if c is not None and not isinstance(c, bool):
            return None  # the condition of a boxed conditional must be a boolean
        return then(s, strict) if c is True else other(s, strict)
    return run


def _filter(el, owner, label, ctx) -> Boxed:
    source, match = _part(el, "in", owner, label, ctx), _part(el, "match", owner, label, ctx)

    def run(s, strict):
        items = source(s, strict)
        if items is None:
            return None
        items = items if isinstance(items, list) else [items]
        out = []
        for x in items:
            state().tick()
            if match(s.child({"item": x, **x} if isinstance(x, dict) else {"item": x}), strict) is True:
                out.append(x)
        return out
    return run


def _iterator(el, owner, label, ctx) -> Boxed:
    kind, var = local(el.tag), el.get("iteratorVariable")
    source = _part(el, "in", owner, label, ctx)
    body = _part(el, "return" if kind == "for" else "satisfies", owner, label, ctx)

    def run(s, strict):
        items = iteration_values(source(s, strict))  # a list, or the integers of a range
        if items is None:
            return None
        results = []
        for x in items:
            state().tick()
            results.append(body(s.child({var: x, "partial": results}), strict))
        if kind == "for":
            return results
        if any(r is not None and not isinstance(r, bool) for r in results):
            return None  # `satisfies` must give booleans
        if kind == "some":
            return True if any(r is True for r in results) else (False if all(r is False for r in results) else None)
        return False if any(r is False for r in results) else (True if all(r is True for r in results) else None)
    return run


_COMPILERS = {
    "literalExpression": _literal, "context": _context, "invocation": _invocation, "list": _list,
    "relation": _relation, "functionDefinition": _function_definition, "decisionTable": _decision_table,
    "conditional": _conditional, "encapsulatedLogic": _function_definition, "filter": _filter, "for": _iterator, "some": _iterator, "every": _iterator,
}


def declared_names(root) -> set[str]:
    """Every name a model declares (variables, parameters, columns, iterators): FEEL may use them, spaces and all."""
    names = set()
    for el in root.iter():
        tag = local(el.tag)
        if tag in ("variable", "formalParameter", "parameter", "column", "itemComponent", "itemDefinition",
                   "decision", "inputData", "businessKnowledgeModel", "decisionService", "import"):
            if el.get("name"):
                names.add(el.get("name"))
        if tag in ("for", "some", "every") and el.get("iteratorVariable"):
            names.add(el.get("iteratorVariable"))
    return names


