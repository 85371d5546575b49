"""form-js ``conditional.hide``: FEEL evaluated on the server, so a hidden field is neither required nor kept.

form-js writes the condition as a FEEL expression after ``=`` (``=consent != "not_sought"``) and hides the
field when it evaluates to ``true``. The browser evaluates it as the worker types (progressive
enhancement); the server evaluates it again over what the case knows and what was submitted, because the
server decides what is required and what is stored.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from service.engine.decisions.feel import Expression, FeelEvaluationError, FeelSyntaxError, Limits

#: A hide condition reads a few answers: it never needs the budget of a decision table.
_LIMITS = Limits(max_iterations=10_000, max_list_items=1_000, max_string_length=100_000,
                 time_budget_seconds=0.2)


@lru_cache(maxsize=2048)
def compiled(condition: str) -> Expression:
    """The FEEL expression of a condition; raises FeelSyntaxError naming what is wrong."""
    text = condition.strip()
    return Expression(text[1:] if text.startswith("=") else text)


def syntax_problem(condition: str) -> str | None:
    """Why a condition cannot be evaluated, in words for the analyst; None when it can."""
    try:
        compiled(condition)
    except FeelSyntaxError as error:
        return f"the hide condition {condition!r} is not a FEEL expression: {error}"
    return None


def is_hidden(condition: str | None, answers: Mapping[str, Any]) -> bool:
    """True when the condition holds for these answers. A condition that cannot be evaluated shows the field.

    Showing is the safe side: a shown field can be answered, a wrongly hidden one would lose a
    required answer.
    """
    if not condition:
        return False
    try:
        return compiled(condition).evaluate(dict(answers), limits=_LIMITS) is True
    except (FeelSyntaxError, FeelEvaluationError, RecursionError, ValueError, TypeError):
        return False


#: The hide conditions the browser can evaluate, as form-js writes them: ``=a = "x"``, ``=a != "x"``,
#: ``=not(a)`` and ``=a``. Anything else is left to the server (the field stays shown in the browser).
_KEY = r"([A-Za-z_][A-Za-z0-9_]*)"
_SIMPLE = (
    (re.compile(rf'^{_KEY}\s*!=\s*"([^"\\]*)"$'), "ne"),
    (re.compile(rf'^{_KEY}\s*=\s*"([^"\\]*)"$'), "eq"),
    (re.compile(rf"^not\s*\(\s*{_KEY}\s*\)$"), "not"),
    (re.compile(rf"^{_KEY}$"), "truthy"),
)
_FEEL_WORDS = {"not", "and", "or", "true", "false", "null", "if", "then", "else", "for", "in", "some", "every"}


def browser_condition(condition: str | None) -> dict[str, str] | None:
    """A simple hide condition as the data attributes static/js/conditional.js reads; None when it is not simple.

    ``{"key": "consent", "op": "ne", "value": "not_sought"}`` for ``=consent != "not_sought"``. The server
    still evaluates every condition itself (``is_hidden``): this only lets the page follow the worker.
    """
    if not condition or syntax_problem(condition):
        return None
    text = condition.strip()
    text = text[1:].strip() if text.startswith("=") else text
    for pattern, op in _SIMPLE:
        match = pattern.match(text)
        if match and match.group(1) not in _FEEL_WORDS:
            return {"key": match.group(1), "op": op, "value": match.group(2) if op in ("eq", "ne") else ""}
    return None
