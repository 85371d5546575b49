"""The FEEL interpreter: a tuple AST compiled once into Python closures over a :class:`Scope`.

Nothing is handed to Python's ``eval``; the only operations an expression can perform are the ones
below, so it is sandboxed by construction. Every evaluation runs under :class:`Limits`: iterations,
list and string sizes, number magnitude and time (the CPU time the evaluation spends) are bounded.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import decimal
from decimal import Decimal
from typing import Any, Callable

from service.engine.limits import Deadline

from . import builtins_lists  # noqa: F401  (registers the list, range and date built-ins)
from .builtins import BUILTINS, check_size
from .operators import ARITHMETIC, and3, cmp_op, get_member, neg, or3, test_one, ut_range
from .parser import FeelSyntaxError, Parser
from .types import instance_of
from .values import DEFAULT_LIMITS, FeelEvaluationError, Function, Limits, Range, compare, to_feel

Compiled = Callable[["Scope"], Any]


# --------------------------------------------------------------------------- evaluation state

class EvalState:
    """Per-evaluation bookkeeping: the limits, iterations so far, the deadline and the model's types."""

    __slots__ = ("limits", "iterations", "deadline", "types")

    def __init__(self, limits: Limits, types: dict | None = None):
        self.limits = limits
        self.iterations = 0
        self.deadline = Deadline(limits.time_budget_seconds)
        self.types = types or {}

    def tick(self, n: int = 1) -> None:
        self.iterations += n
        if self.iterations > self.limits.max_iterations:
            raise FeelEvaluationError(f"the expression iterates more than {self.limits.max_iterations} times")
        if self.deadline.passed():
            raise FeelEvaluationError(
                f"the evaluation took longer than its budget of {self.limits.time_budget_seconds} s")


_STATE: contextvars.ContextVar[EvalState | None] = contextvars.ContextVar("feel_state", default=None)


def current_state() -> EvalState | None:
    return _STATE.get()


def state() -> EvalState:
    """The evaluation under way; outside one (constants folded at load), a fresh one that is not kept,
    so no stale deadline or count outlives it."""
    s = _STATE.get()
    return s if s is not None else EvalState(DEFAULT_LIMITS)


@contextlib.contextmanager
def evaluation(limits: Limits | None = None, types: dict | None = None):
    """One bounded evaluation; nested uses share the outer one's budget."""
    outer = _STATE.get()
    if outer is not None and limits is None:
        if types:
            outer.types = {**outer.types, **types}
        yield outer
        return
    token = _STATE.set(EvalState(limits or DEFAULT_LIMITS, types))
    try:
        yield _STATE.get()
    finally:
        _STATE.reset(token)


# --------------------------------------------------------------------------- scope

_MISSING = object()


class Scope:
    """Name bindings: a dict of values (case data or FEEL values) and a parent scope."""

    __slots__ = ("data", "parent", "input")

    def __init__(self, data: dict | None = None, input=None, parent: "Scope | None" = None):
        self.data = data if data is not None else {}
        self.parent = parent
        self.input = input if parent is None or input is not None else parent.input

    def lookup(self, name: str, default=None):
        s = self
        while s is not None:
            v = s.data.get(name, _MISSING)
            if v is not _MISSING:
                return to_feel(v) if isinstance(v, (int, float, list, dict)) and not isinstance(v, bool) else v
            s = s.parent
        return default

    def child(self, bindings: dict) -> "Scope":
        return Scope(bindings, None, self)

    def with_input(self, value) -> "Scope":
        return Scope({}, value, self)


# --------------------------------------------------------------------------- compiler

def compile_ast(ast) -> Compiled:
    """An AST node as a closure of a Scope; a range or list of literals is built once, here."""
    kind = ast[0]
    if kind in ("num", "str", "const"):
        value = ast[1]
        return lambda s: value
    fn = _COMPILERS[kind](ast)
    if kind in ("range", "list", "ut") and all(_is_literal(n) for n in walk(ast) if n is not ast):
        value = fn(Scope())
        return lambda s: value
    return fn


def _c_name(ast):
    name = ast[1]
    fn = BUILTINS.get(name)

    def run(s):
        v = s.lookup(name, _MISSING)
        if v is _MISSING and "." in name:
            return _dotted(s, name)
        return fn if v is _MISSING else v
    return run


def _dotted(s: Scope, name: str):
    """A declared name with a dot (a parameter ``Person.Gender``) read where only ``Person`` is bound: a path."""
    first, *rest = name.split(".")
    v = s.lookup(first.strip())
    for part in rest:
        v = get_member(v, part.strip())
    return v


def _c_list(ast):
    items = [compile_ast(i) for i in ast[1]]
    return lambda s: [i(s) for i in items]


def _c_ctx(ast):
    entries = [(k, compile_ast(e)) for k, e in ast[1]]

    def run(s):
        out: dict = {}
        inner = s.child(out)
        for k, e in entries:
            out[k] = e(inner)
        return out
    return run


def _c_range(ast):
    lo, hi = compile_ast(ast[1]), compile_ast(ast[3])
    lc, hc = ast[2], ast[4]

    def run(s):
        a, b = lo(s), hi(s)
        if a is None or b is None or compare(a, b) in (None, 1) or type(a) is not type(b):
            return None  # a literal range needs two ascending endpoints of one type; `< 10` is unbounded
        return Range(a, lc, b, hc)
    return run


def _c_ut(ast):
    op, e = ast[1], compile_ast(ast[2])
    return lambda s: ut_range(op, e(s))


def _c_neg(ast):
    e = compile_ast(ast[1])
    return lambda s: neg(e(s))


def _c_bin(ast):
    fn, a, b = ARITHMETIC[ast[1]], compile_ast(ast[2]), compile_ast(ast[3])
    return lambda s: fn(a(s), b(s))


def _c_cmp(ast):
    op, a, b = ast[1], compile_ast(ast[2]), compile_ast(ast[3])
    return lambda s: cmp_op(op, a(s), b(s))


def _c_and(ast):
    a, b = compile_ast(ast[1]), compile_ast(ast[2])

    def run(s):
        x = a(s)
        return False if x is False else and3(x, b(s))
    return run


def _c_or(ast):
    a, b = compile_ast(ast[1]), compile_ast(ast[2])

    def run(s):
        x = a(s)
        return True if x is True else or3(x, b(s))
    return run


def _c_between(ast):
    v, lo, hi = (compile_ast(x) for x in ast[1:])

    def run(s):
        x = v(s)
        return and3(cmp_op(">=", x, lo(s)), cmp_op("<=", x, hi(s)))
    return run


def compile_test(t) -> tuple:
    """A positive unary test as (op or None, compiled target, whether it uses ``?``)."""
    if t[0] == "ut":
        return t[1], compile_ast(t[2]), False
    return None, compile_ast(t[1]), uses_input(t[1])


def _c_in(ast):
    v = compile_ast(ast[1])
    tests = [compile_test(t) + (t[0] == "expr" and t[1][0] == "range",) for t in ast[2]]

    def run(s):
        x = v(s)
        inner = s.with_input(x)
        result = False
        for op, target, uses, is_range in tests:
            t = target(inner)
            # a range with a null endpoint is null, and so is membership in it
            result = or3(result, None if is_range and t is None else test_one(x, op, t, uses))
            if result is True:
                return True
        return result
    return run


def _c_inst(ast):
    e, t = compile_ast(ast[1]), ast[2]
    return lambda s: instance_of(e(s), t, state().types)


def _c_if(ast):
    c, t, e = (compile_ast(x) for x in ast[1:])
    return lambda s: t(s) if c(s) is True else e(s)


def iteration_values(v):
    """The items a ``for``/``some``/``every`` context iterates: a list, or the integers of a range."""
    if isinstance(v, list):
        return v
    if isinstance(v, Range) and isinstance(v.lo, Decimal) and isinstance(v.hi, Decimal):
        lo = int(v.lo) + (0 if v.lo_closed else 1)
        hi = int(v.hi) - (0 if v.hi_closed else 1)
        return _int_range(lo, hi)
    return None


def _int_range(lo: int, hi: int):
    n = abs(hi - lo) + 1
    if n > state().limits.max_list_items:
        raise FeelEvaluationError(f"the expression builds a list of more than {state().limits.max_list_items} items")
    step = 1 if hi >= lo else -1
    return [Decimal(i) for i in range(lo, hi + step, step)]


def _compile_contexts(contexts):
    out = []
    for var, it in contexts:
        if it[0] == "irange":
            lo, hi = compile_ast(it[1]), compile_ast(it[2])
            out.append((var, lambda s, lo=lo, hi=hi: _irange(lo(s), hi(s))))
        else:
            c = compile_ast(it)
            out.append((var, lambda s, c=c: iteration_values(c(s))))
    return out


def _irange(a, b):
    """``for x in a..b``: the integers, or the days, from a to b (either way)."""
    if isinstance(a, dt.date) and isinstance(b, dt.date) and not isinstance(a, dt.datetime):
        return [a + dt.timedelta(days=int(i)) for i in _int_range(0, (b - a).days)]
    if not isinstance(a, Decimal) or not isinstance(b, Decimal):
        return None
    return _int_range(int(a), int(b))


def _bindings(contexts, s):
    """Every combination of the iteration contexts (each may refer to the ones before it)."""
    def walk(i, scope, acc):
        if i == len(contexts):
            yield acc, scope
            return
        var, values = contexts[i]
        items = values(scope)
        if items is None:
            raise _NullIteration()
        for x in items:
            bound = {**acc, var: x}
            yield from walk(i + 1, scope.child({var: x}), bound)
    return walk(0, s, {})


class _NullIteration(Exception):
    pass


def _c_for(ast):
    contexts, body = _compile_contexts(ast[1]), compile_ast(ast[2])

    def run(s):
        st, out = state(), []
        try:
            for _, scope in _bindings(contexts, s):
                st.tick()
                out.append(body(scope.child({"partial": out})))
        except _NullIteration:
            return None
        check_size(out, st.limits)
        return out
    return run


def _c_quantified(ast):
    every = ast[0] == "every"
    contexts, cond = _compile_contexts(ast[1]), compile_ast(ast[2])

    def run(s):
        st, undecided = state(), False
        try:
            for _, scope in _bindings(contexts, s):
                st.tick()
                r = cond(scope)
                if r is (not every):
                    return r
                undecided = undecided or r is not every
        except _NullIteration:
            return None
        return None if undecided else every
    return run


def _c_path(ast):
    e, name = compile_ast(ast[1]), ast[2]
    return lambda s: get_member(e(s), name)


def _c_filter(ast):
    e, cond = compile_ast(ast[1]), compile_ast(ast[2])

    def run(s):
        v = e(s)
        if v is None:
            return None
        items = v if isinstance(v, list) else [v]
        if not items:  # `[][1]` is null (no such position), `[][item > 1]` is []
            return None if isinstance(cond(s.child({"item": None})), Decimal) else []
        st, out = state(), []
        for i, x in enumerate(items):
            st.tick()
            r = cond(s.child({"item": x, **x} if isinstance(x, dict) else {"item": x}))
            if isinstance(r, Decimal) and i == 0:
                return _index(items, r)
            if r is True:
                out.append(x)
        return out
    return run


def _index(items: list, r: Decimal):
    if r != r.to_integral_value():
        return None
    n = int(r)
    if n == 0 or abs(n) > len(items):
        return None
    return items[n - 1] if n > 0 else items[n]


def _c_call(ast):
    callee = ast[1]
    f = compile_ast(callee)
    args = [compile_ast(a) for a in ast[2]]
    named = None if ast[3] is None else [(k, compile_ast(a)) for k, a in ast[3]]

    def run(s):
        fn = f(s)
        if not isinstance(fn, Function):
            return None
        state().tick()  # calls count as steps too: recursion without a loop must meet the budget
        if named is not None:
            result = fn.call(None, {k: a(s) for k, a in named})
        else:
            result = fn.call([a(s) for a in args])
        if isinstance(result, (list, str)):
            check_size(result, state().limits)
        return result
    return run


def _c_fn(ast):
    params, types, body = ast[1], ast[2], compile_ast(ast[3])

    def run(s):
        def impl(args, named):
            bound = _bind(params, args, named)
            if bound is None:
                return None
            for p, t in zip(params, types):
                if t is not None and bound[p] is not None and not instance_of(bound[p], t, state().types):
                    return None
            return body(s.child(bound))
        return Function("anonymous", list(params), impl, list(types))
    return run


def _bind(params, args, named):
    if named is not None:
        if not set(named) <= set(params):
            return None
        return {p: named.get(p) for p in params}
    if len(args) > len(params):
        return None
    return {p: (args[i] if i < len(args) else None) for i, p in enumerate(params)}


def _c_external(ast):
    from .java import external_function  # the few Java methods the standard's examples call
    params, spec = ast[1], compile_ast(ast[2])
    return lambda s: external_function(params, spec(s))


def uses_input(ast) -> bool:
    return any(n[0] == "input" or (n[0] == "name" and n[1] == "?") for n in walk(ast))


def walk(ast):
    """Every node of an AST, depth first."""
    stack = [ast]
    while stack:
        n = stack.pop()
        if isinstance(n, tuple):
            if n and isinstance(n[0], str):
                yield n
            stack.extend(x for x in n[1:] if isinstance(x, (tuple, list)))
        elif isinstance(n, list):
            stack.extend(x for x in n if isinstance(x, (tuple, list)))


_COMPILERS = {
    "name": _c_name, "input": lambda a: (lambda s: s.input), "list": _c_list, "ctx": _c_ctx, "range": _c_range,
    "ut": _c_ut, "neg": _c_neg, "bin": _c_bin, "cmp": _c_cmp, "and": _c_and, "or": _c_or,
    "between": _c_between, "in": _c_in, "inst": _c_inst, "if": _c_if, "for": _c_for, "some": _c_quantified,
    "every": _c_quantified, "path": _c_path, "filter": _c_filter, "call": _c_call, "fn": _c_fn,
    "external": _c_external,
}


def literal_range(text: str):
    """The range a range() string describes, or None unless its endpoints are literals."""
    try:
        ast = Parser(text, functions=BUILTINS).parse_expression()
    except FeelSyntaxError:
        return None
    if ast[0] != "range" or not all(_is_literal(n) for n in (ast[1], ast[3])):
        return None  # a unary comparison (">= 10") is not a literal range
    try:
        v = compile_ast(ast)(Scope())
    except (ArithmeticError, FeelEvaluationError):
        return None
    return v if isinstance(v, Range) else None


def _is_literal(n) -> bool:
    if n[0] in ("num", "str", "const"):
        return True
    if n[0] == "neg" and n[1][0] == "num":
        return True
    if n[0] == "call" and n[1][0] == "name" and n[1][1] in ("date", "time", "date and time", "duration"):
        return all(a[0] == "str" for a in n[2])
    return False


def safe_call(fn: Compiled, scope: Scope):
    """Run compiled FEEL, turning stray arithmetic errors into null as the standard's null semantics say."""
    try:
        return fn(scope)
    except (decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, OverflowError):
        return None
    except RecursionError:
        raise FeelEvaluationError("the expression recurses too deeply") from None


