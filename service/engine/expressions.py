"""The sandbox every diagram expression and script runs in.

Analysts write conditions as Camunda Modeler users do (``${weeks_open >= 8}``,
``${consent && !urgent}``) or as plain Python (``weeks_open >= 8``). Both are
read by :func:`to_python`, checked against a whitelist of syntax, and
evaluated with no builtins but the functions in :data:`FUNCTIONS`. Script
tasks are compiled with RestrictedPython. Nothing here imports, opens files or
reaches an attribute whose name starts with an underscore.
"""
from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Callable, Mapping, MutableMapping
from datetime import date, datetime
from functools import lru_cache
from types import CodeType
from typing import Any

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (
    full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence, safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from . import calendar, clock, limits
from .clock import LONDON


class ExpressionError(ValueError):
    """An expression or script that may not run, or failed to run."""


def _today() -> str:
    return clock.now().astimezone(LONDON).date().isoformat()


def _date_of(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(LONDON).date()
    if isinstance(value, date):
        return value
    return calendar.to_london(value).date()


def _days_between(earlier: Any, later: Any = None) -> int:
    """Calendar days from ``earlier`` to ``later`` (default today)."""
    return (_date_of(later if later is not None else _today()) - _date_of(earlier)).days


def _add_days(value: Any, days: int) -> str:
    from datetime import timedelta

    return (_date_of(value) + timedelta(days=days)).isoformat()


def _add_months(value: Any, months: int) -> str:
    from dateutil.relativedelta import relativedelta

    return (_date_of(value) + relativedelta(months=months)).isoformat()


#: The most working days an expression may count (ten years): the walk goes day by day, working out each
#: year's bank holidays, and working_days(10**7) took 18 s, far beyond a step's time.
MAX_WORKING_DAYS = 2_610


def _working_days(count: int, start: Any = None) -> datetime:
    if isinstance(count, int) and abs(count) > MAX_WORKING_DAYS:
        raise ExpressionError(f"working_days counts at most {MAX_WORKING_DAYS:,} days (ten years), not {count:,}")
    return calendar.working_days(count, start)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0)


#: Every name an expression or script may call. Each is pure (or reads the clock).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "min": min, "max": max, "abs": abs, "round": round, "sum": sum,
    "any": any, "all": all, "sorted": sorted, "str": str, "int": int, "float": float, "bool": bool,
    "working_days": _working_days,
    "end_of_working_day": calendar.end_of_working_day,
    "next_weekday": calendar.next_weekday,
    "today": _today,
    "now": clock.now,
    "days_between": _days_between,
    "add_days": _add_days,
    "add_months": _add_months,
    "is_empty": _is_empty,
}

_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Name, ast.Load,
    ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Subscript, ast.Slice, ast.Call, ast.keyword,
    ast.Attribute, ast.JoinedStr, ast.FormattedValue,
    ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
    ast.Mod, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
)
_JUEL_WORDS = {"true": "True", "false": "False", "null": "None", "eq": "==", "ne": "!=",
               "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "empty": "is_empty"}
_WRAPPED = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.S)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_expression(text: str | None) -> bool:
    """Whether a value written in a diagram is an expression (``${...}``, ``#{...}`` or ``=`` FEEL), not a literal."""
    return bool(text) and ("${" in text or "#{" in text or feel_expressions.is_feel(text))


def names_read(source: str) -> set[str]:
    """The names of case data an expression reads."""
    if feel_expressions.is_feel(source):
        return feel_expressions.names_read(source)
    return {node.id for node in ast.walk(ast.parse(to_python(source), mode="eval")) if isinstance(node, ast.Name)}


def unwrap(source: str) -> str:
    """The expression inside ``${...}`` (or the text itself), stripped."""
    match = _WRAPPED.match(source or "")
    return (match.group(1) if match else source or "").strip()


def to_python(source: str) -> str:
    """Read a JUEL-style (``&&``, ``||``, ``!``, ``true``) or Python expression as Python."""
    text, out, i = unwrap(source), [], 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            end = i + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            i = end + 1
        elif text.startswith("&&", i) or text.startswith("||", i):
            out.append(" and " if char == "&" else " or ")
            i += 2
        elif char == "!" and not text.startswith("!=", i):
            out.append(" not ")
            i += 1
        elif _IDENTIFIER.match(text, i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            word = _IDENTIFIER.match(text, i).group(0)
            out.append(_JUEL_WORDS.get(word, word))
            i += len(word)
        else:
            out.append(char)
            i += 1
    return "".join(out).strip()


class _AttributeToLookup(ast.NodeTransformer):
    """``child.age`` reads the key ``age`` of the mapping ``child`` (JUEL property access)."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        return ast.copy_location(
            ast.Call(func=ast.Name(id="__lookup__", ctx=ast.Load()),
                     args=[node.value, ast.Constant(node.attr)], keywords=[]), node)


def _lookup(container: Any, key: str) -> Any:
    if isinstance(container, Mapping):
        if key not in container:
            raise ExpressionError(f"'{key}' is not in the data")
        return container[key]
    raise ExpressionError(f"cannot read '{key}' of a {type(container).__name__}")


def _parse(source: str, mode: str, what: str) -> ast.AST:
    """Parse and refuse source nested too deep for the compiler (it would fail with RecursionError)."""
    try:
        tree = ast.parse(source, mode=mode)
        limits.check_nesting(tree, source, what)
    except (RecursionError, MemoryError):  # the parser gives up on extreme nesting
        raise ExpressionError(f"the {what} is nested more than {limits.SOURCE_NESTING} deep") from None
    except limits.LimitExceeded as error:
        raise ExpressionError(str(error)) from None
    return tree


def check_expression(source: str) -> ast.Expression:
    """Parse and vet an expression; raise :class:`ExpressionError` naming what is not allowed."""
    python = to_python(source)
    if not python:
        raise ExpressionError("the expression is empty")
    try:
        tree = _parse(python, "eval", "expression")
    except SyntaxError as error:
        raise ExpressionError(f"'{unwrap(source)}' is not a valid expression ({error.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(f"'{unwrap(source)}' uses {type(node).__name__}, which expressions may not use")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"names starting with '_' are not allowed ('{node.id}')")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"attributes starting with '_' are not allowed ('{node.attr}')")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"'{called}' is not a function expressions may call")
    return tree


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> CodeType:
    """Vet and compile an expression once, with its costly operations routed through the limit guards.

    One that starts with ``=`` is FEEL, as Camunda 8 writes it (:mod:`.feel_expressions`)."""
    if feel_expressions.is_feel(source):
        return feel_expressions.compile_feel(source)
    tree = _AttributeToLookup().visit(check_expression(source))
    tree = ast.fix_missing_locations(limits.BoundingTransformer().visit(tree))
    return compile(tree, "<expression>", "eval")


_EXPRESSION_GLOBALS = {"__builtins__": {}, "__lookup__": _lookup, **FUNCTIONS, **limits.BOUNDED_BUILTINS,
                       **limits.GUARDS}


def evaluate(source: str, data: Mapping[str, Any]) -> Any:
    """Evaluate an expression against case data in the sandbox, within the step's limits (FEEL if it starts
    with ``=``)."""
    if feel_expressions.is_feel(source):
        return feel_expressions.evaluate(source, data)
    code = compile_expression(source)
    try:
        with limits.evaluating("expression"):
            return eval(code, _EXPRESSION_GLOBALS, dict(data))  # noqa: S307 - vetted code, no builtins
    except ExpressionError:
        raise
    except limits.LimitExceeded as error:
        raise ExpressionError(f"{error} (expression '{unwrap(source)}')") from None
    except NameError as error:
        name = str(error).split("'")[1] if "'" in str(error) else str(error)
        raise ExpressionError(f"'{name}' is not in the case data{_did_you_mean(name, data)} "
                              f"(expression '{unwrap(source)}')") from None
    except Exception as error:  # the expression itself failed: report it, not a traceback
        raise ExpressionError(f"expression '{unwrap(source)}' failed: {error}") from None


def _did_you_mean(name: str, data: Mapping[str, Any]) -> str:
    """A hint for a misspelt variable: the closest name the case data has, if any is close."""
    close = difflib.get_close_matches(name, [key for key in data if isinstance(key, str)], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


@lru_cache(maxsize=1024)
def compile_script(source: str) -> CodeType:
    """Compile a script task's code with RestrictedPython (bounded); refuse imports outright."""
    try:
        tree = _parse(source, "exec", "script")
    except SyntaxError as error:
        raise ExpressionError(f"the script is not valid Python (line {error.lineno}: {error.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            raise ExpressionError(f"scripts may not import (line {node.lineno})")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.Global, ast.Nonlocal)):
            raise ExpressionError(f"scripts may not define functions or classes (line {node.lineno})")
    assigned = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id not in _SCRIPT_BUILTINS and node.func.id not in assigned):
            raise ExpressionError(f"'{node.func.id}' is not a function scripts may call (line {node.lineno})")
    result = compile_restricted_exec(source, filename="<script>", policy=_BoundedPolicy)
    if result.errors:
        raise ExpressionError("; ".join(result.errors))
    return result.code


class _BoundedPolicy(RestrictingNodeTransformer):
    """RestrictedPython's checks, then the rewrites that hold a script to its step's limits."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        return limits.Bounding.binop(super().visit_BinOp(node))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        return limits.Bounding.formatted_value(super().visit_FormattedValue(node))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return limits.Bounding.joined_str(super().visit_JoinedStr(node))

    def visit_While(self, node: ast.While) -> ast.AST:
        return limits.Bounding.while_(super().visit_While(node))

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        return limits.Bounding.starred(super().visit_Starred(node))


_SCRIPT_BUILTINS = {**safe_builtins, **FUNCTIONS, **limits.BOUNDED_BUILTINS}
for _name in ("setattr", "delattr", "__import__"):
    _SCRIPT_BUILTINS.pop(_name, None)


def _inplace(op: str, left: Any, right: Any) -> Any:
    """RestrictedPython's ``_inplacevar_``: ``x += y`` and the like, bounded as ``x = x + y`` is."""
    if op not in ("+=", "-=", "*="):
        raise ExpressionError(f"'{op}' is not allowed in scripts")
    return limits.bound_op(op[:-1], left, right)


_SCRIPT_GLOBALS = {
    "__builtins__": _SCRIPT_BUILTINS,
    "_getattr_": limits.guarded_getattr(safer_getattr),
    "_getitem_": limits.guarded_getitem,
    "_getiter_": limits.counted,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,  # a, b = pair
    "_write_": full_write_guard,
    "_inplacevar_": _inplace,
    **limits.GUARDS,
}


def run_script(source: str, data: MutableMapping[str, Any]) -> None:
    """Run a script task's code within the step's limits; its assignments land in ``data``."""
    code = compile_script(source)
    local = dict(data)
    try:
        with limits.evaluating("script") as budget:
            exec(code, dict(_SCRIPT_GLOBALS), local)  # noqa: S102 - RestrictedPython-compiled
            written = {key: value for key, value in local.items() if not key.startswith("_") and not callable(value)}
            for value in written.values():  # case data is kept as JSON: nothing too deep or too big
                limits.check_value(value, budget)
    except limits.LimitExceeded as error:
        raise ExpressionError(str(error)) from None
    except Exception as error:
        raise ExpressionError(f"the script failed: {type(error).__name__}: {error}") from None
    data.update(written)


class SandboxedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow's script environment, routed through the sandbox above."""

    def __init__(self) -> None:
        super().__init__({})

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        return evaluate(expression, {**(external_context or {}), **context})

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        run_script(script, context)
        return True

    def call_service(self, context: dict, **kwargs: Any) -> Any:
        raise ExpressionError("service tasks are not supported")


def script_engine() -> PythonScriptEngine:
    """A script engine whose every expression and script runs in the sandbox."""
    return PythonScriptEngine(environment=SandboxedEnvironment())


SCRIPT_ENGINE = script_engine()

from . import feel_expressions  # noqa: E402 (FEEL expressions use ExpressionError and FUNCTIONS above)
