"""``function(...) external {java: {class: ..., method signature: ...}}`` for a fixed whitelist of pure methods.

The standard lets a model call Java; this engine runs no Java, so the java.lang methods the standard's
examples use are mapped to their Python equivalents and anything else is null: nothing is looked up
by reflection, so the sandbox holds.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal

from .values import CTX, Function


def _num(v):
    return float(v) if isinstance(v, Decimal) else None


def _math1(fn):
    return lambda x: Decimal(repr(fn(_num(x))))


def _max(a, b):
    return max(a, b) if isinstance(a, Decimal) and isinstance(b, Decimal) else None


def _min(a, b):
    return min(a, b) if isinstance(a, Decimal) and isinstance(b, Decimal) else None


def _value_of_char(s):
    return s if isinstance(s, str) and len(s) == 1 else None


def _int_of(s):
    return Decimal(int(s)) if isinstance(s, str) and re.fullmatch(r"[+-]?\d+", s) else None


def _double_of(s):
    try:
        return Decimal(s) if isinstance(s, str) else None
    except ArithmeticError:
        return None


def _whole(bits: int):
    def of(n):
        if not isinstance(n, Decimal) or n != n.to_integral_value() or not -(2 ** (bits - 1)) <= n < 2 ** (bits - 1):
            return None
        return n
    return of


_NUMERIC = ("double", "int", "long", "float")
_METHODS = {
    ("java.lang.Math", "cos", ("double",)): _math1(math.cos),
    ("java.lang.Math", "sin", ("double",)): _math1(math.sin),
    ("java.lang.Math", "tan", ("double",)): _math1(math.tan),
    ("java.lang.Math", "sqrt", ("double",)): lambda x: CTX.sqrt(x) if isinstance(x, Decimal) and x >= 0 else None,
    ("java.lang.Math", "abs", ("double",)): lambda x: abs(x) if isinstance(x, Decimal) else None,
    ("java.lang.Short", "valueOf", ("short",)): _whole(16),
    ("java.lang.Byte", "valueOf", ("byte",)): _whole(8),
    ("java.lang.Integer", "valueOf", ("int",)): _whole(32),
    ("java.lang.Long", "valueOf", ("long",)): _whole(64),
    ("java.lang.String", "valueOf", ("char",)): _value_of_char,
    ("java.lang.Integer", "valueOf", ("java.lang.String",)): _int_of,
    ("java.lang.Double", "valueOf", ("java.lang.String",)): _double_of,
    ("java.lang.Float", "valueOf", ("java.lang.String",)): _double_of,
}
def _format(template, *values):
    """String.format with %s and %d only: enough for the standard's example, nothing reflective."""
    if not isinstance(template, str) or any(isinstance(v, (dict, list)) for v in values):
        return None
    if re.search(r"%[^sd%]", template):
        return None
    from .builtins import feel_string
    return template.replace("%d", "%s") % tuple(feel_string(v) for v in values)


_METHODS[("java.lang.String", "format", ("java.lang.String", "[Ljava.lang.Object;"))] = _format
for _t in _NUMERIC:
    _METHODS[("java.lang.Math", "max", (_t, _t))] = _max
    _METHODS[("java.lang.Math", "min", (_t, _t))] = _min


def external_function(params: list[str], spec) -> Function | None:
    """The Function an external definition names, or None if it is not a known pure method."""
    java = spec.get("java") if isinstance(spec, dict) else None
    if not isinstance(java, dict):
        return None
    cls, sig = java.get("class"), java.get("method signature")
    m = re.fullmatch(r"\s*([\w$]+)\s*\(([^)]*)\)\s*", sig or "")
    if not isinstance(cls, str) or not m:
        return None
    arg_types = tuple(a.strip() for a in m[2].split(",") if a.strip())
    method = _METHODS.get((cls, m[1], arg_types))
    varargs = bool(arg_types) and arg_types[-1].startswith("[")
    if method is None or (len(arg_types) != len(params) and not varargs):
        return None

    def impl(args, named):
        values = [named.get(p) for p in params] if named is not None else list(args)
        if len(values) != len(params) and not varargs:
            return None
        try:
            return method(*values)
        except (TypeError, ValueError, ArithmeticError):
            return None
    return Function(f"{cls}.{m[1]}", list(params), impl)
