"""FEEL (DMN 1.5): compiled expressions and unary tests, the entry points the decision engine uses.

The language lives in the modules beside this one: ``values`` and ``types`` (the FEEL values, equality,
order, `instance of`, coercion), ``temporal`` (dates, times, durations), ``builtins`` and
``builtins_lists`` (the standard's functions), ``lexicon`` and ``parser`` (text to AST), ``operators`` and
``interp`` (AST to closures, bounded by ``Limits``), ``java`` (the whitelisted external functions).
Nothing is ever handed to Python's ``eval``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from .builtins import BUILTINS, IMPURE, feel_string
from .interp import (Scope, compile_ast, compile_test, current_state, evaluation, safe_call, test_one, uses_input,
                     walk)
from .parser import FeelSyntaxError, Parser
from .temporal import (format_temporal, parse_date, parse_datetime,
                       parse_duration, parse_time)
from .values import (CTX, DEFAULT_LIMITS, FeelEvaluationError, Function, Limits, Range, YMDuration, compare,
                     equals, feel_type, to_feel, to_python)

__all__ = ["Expression", "UnaryTests", "FeelSyntaxError", "FeelEvaluationError", "Limits", "DEFAULT_LIMITS",
           "Scope", "YMDuration", "Range", "Function", "CTX", "equals", "compare", "feel_type", "feel_string",
           "to_feel", "to_python", "to_json_value", "parse_date", "parse_datetime", "parse_time",
           "parse_duration", "intervals_overlap", "evaluation", "BUILTINS"]


def to_json_value(v):
    """The JSON-safe form of a FEEL value: dates, times and durations as their ISO strings."""
    if isinstance(v, Decimal):
        return to_python(v)
    if (text := format_temporal(v)) is not None:
        return text
    if isinstance(v, Range):
        return feel_string(v)
    if isinstance(v, Function):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_json_value(x) for k, x in v.items()}
    return v


# built-in parameter names with spaces, so that `substring(string: s, start position: 2)` reads
_PARAMETER_NAMES = sorted({p for f in BUILTINS.values() for p in f.params or () if " " in p})


def _parser(text: str, names: Iterable[str]) -> Parser:
    return Parser(text, [*names, *_PARAMETER_NAMES], BUILTINS)


def _guard(text: str, build):
    try:
        return build()
    except RecursionError:
        raise FeelSyntaxError(text, "expression nested too deeply") from None


def is_constant(ast) -> bool:
    for n in walk(ast):
        if n[0] in ("name", "input", "for", "some", "every", "filter", "fn"):
            return False
        if n[0] == "call" and (n[1][0] != "name" or n[1][1] in IMPURE):
            return False
    return True


class Expression:
    """A compiled FEEL expression; ``names`` are the names with spaces it may use (model variables)."""

    __slots__ = ("text", "ast", "_fn")

    def __init__(self, text: str, names: Iterable[str] = ()):
        self.text = text
        if not text or not text.strip():
            raise FeelSyntaxError(text or "", "empty expression")
        self.ast = _guard(text, lambda: _parser(text, names).parse_expression())
        self._fn = _guard(text, lambda: compile_ast(self.ast))

    def evaluate(self, context: dict | Scope | None = None, input=None, limits: Limits | None = None):
        scope = context if isinstance(context, Scope) else Scope(context or {}, to_feel(input))
        with evaluation(limits):
            return safe_call(self._fn, scope)

    def run(self, scope: Scope):
        """Evaluate inside an evaluation already under way (a decision's), sharing its limits."""
        return safe_call(self._fn, scope)

    @property
    def is_constant(self) -> bool:
        return is_constant(self.ast)


class UnaryTests:
    """A compiled decision-table input entry (DMN unary tests): ``-``, a list of tests, or ``not(...)``."""

    __slots__ = ("text", "ast", "_tests", "_negated")

    def __init__(self, text: str | None, names: Iterable[str] = ()):
        self.text = (text or "").strip()
        self.ast = _guard(self.text, lambda: _parser(self.text, names).parse_unary_tests())
        self._negated = self.ast[0] == "not"
        raw = [] if self.ast[0] == "any" else self.ast[1]
        self._tests = _guard(self.text, lambda: [compile_test(t) for t in raw])

    @property
    def is_any(self) -> bool:
        return self.ast[0] == "any"

    def matches(self, value, context: dict | Scope | None = None):
        """True / False / None (null): only True means the rule's cell matches."""
        if self.ast[0] == "any":
            return True
        value = to_feel(value)
        scope = context if isinstance(context, Scope) else Scope(context or {})
        inner = scope.with_input(value)
        if current_state() is None:
            with evaluation():
                result = self._test(value, inner)
        else:
            result = self._test(value, inner)  # inside a decision's evaluation: its budget already runs
        if self._negated:
            return None if result is None else not result
        return result

    def _test(self, value, inner: Scope):
        result = False
        for op, target, uses in self._tests:
            r = test_one(value, op, safe_call(target, inner), uses)
            if r is True:
                return True
            if r is None:
                result = None
        return result

    def static_intervals(self):
        """The tests as (lo, lo_closed, hi, hi_closed) over constants, or None when that is not decidable
        from the text (names, ``?``, negation, functions of the input)."""
        if self.ast[0] == "any":
            return [(None, True, None, True)]
        if self.ast[0] != "tests":
            return None
        out = []
        for t in self.ast[1]:
            part = _static_test(t)
            if part is None:
                return None
            out += part
        return out


def _const(ast):
    return compile_ast(ast)(Scope({})) if is_constant(ast) else _NOT_CONSTANT


_NOT_CONSTANT = object()


def _static_test(t):
    if t[0] == "ut":
        v = _const(t[2])
        if v is _NOT_CONSTANT or v is None or isinstance(v, (list, dict, Range)):
            return None
        op = t[1]
        return {"=": [(v, True, v, True)], "!=": [(None, True, v, False), (v, False, None, True)],
                "<": [(None, True, v, False)], "<=": [(None, True, v, True)],
                ">": [(v, False, None, True)], ">=": [(v, True, None, True)]}[op]
    if uses_input(t[1]):
        return None
    v = _const(t[1])
    if v is _NOT_CONSTANT or v is None or isinstance(v, dict):
        return None
    if isinstance(v, list):
        if any(isinstance(x, (list, dict, Range)) or x is None for x in v):
            return None
        return [(x, True, x, True) for x in v]
    if isinstance(v, Range):
        if v.lo is None and v.hi is None:
            return None
        return [(v.lo, v.lo_closed, v.hi, v.hi_closed)]
    return [(v, True, v, True)]


def intervals_overlap(a, b) -> bool:
    """Do two (lo, lo_closed, hi, hi_closed) intervals share a value?  Values of different types never
    overlap; incomparable values are treated as not overlapping."""
    lo_a, lc_a, hi_a, hc_a = a
    lo_b, lc_b, hi_b, hc_b = b
    types = {feel_type(x) for x in (lo_a, hi_a, lo_b, hi_b) if x is not None}
    if len(types) > 1:
        return False
    if types == {"boolean"}:
        return lo_a == lo_b or lo_a is None or lo_b is None
    lo, lc = lo_a, lc_a
    if lo is None or (lo_b is not None and (compare(lo_b, lo) or 0) > 0):
        lo, lc = lo_b, lc_b
    elif lo_b is not None and compare(lo_b, lo) == 0:
        lc = lc_a and lc_b
    hi, hc = hi_a, hc_a
    if hi is None or (hi_b is not None and (compare(hi_b, hi) or 0) < 0):
        hi, hc = hi_b, hc_b
    elif hi_b is not None and compare(hi_b, hi) == 0:
        hc = hc_a and hc_b
    if lo is None or hi is None:
        return True
    c = compare(lo, hi)
    if c is None:
        return False
    return c < 0 or (c == 0 and lc and hc)
