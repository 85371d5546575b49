"""Evaluating decisions: typed inputs, hit policies, decision requirements, explanations."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .feel import (Scope, YMDuration, equals, feel_type, parse_date, parse_datetime, parse_duration,
                   parse_time, to_feel, to_json_value, to_python, CTX)
from .model import Decision, DecisionDefinitionError, DecisionModel, OutputClause, Problem, SINGLE_HIT


class DecisionEvaluationError(Exception):
    """A decision that cannot produce a result for the given context."""

    def __init__(self, decision_id: str, element: str | None, message: str):
        self.decision_id = decision_id
        self.element = element
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


@dataclass
class MatchedRule:
    id: str
    index: int                      # 1-based, as shown in the modeler
    annotation: str | None
    outputs: dict


@dataclass
class DecisionResult:
    decision_id: str
    decision_name: str
    inputs: dict                    # input label (or expression text) -> value
    outputs: Any                    # shaped by hit policy and number of outputs
    matched_rules: list[MatchedRule] = field(default_factory=list)
    required: list["DecisionResult"] = field(default_factory=list)
    value: Any = field(default=None, repr=False, compare=False)   # the FEEL value (Decimal numbers)

    def to_json(self) -> dict:
        return {
            "decision": self.decision_id,
            "decision_name": self.decision_name,
            "inputs": to_json_value(self.inputs),
            "outputs": to_json_value(self.outputs),
            "matched_rules": [{"id": r.id, "index": r.index, "annotation": r.annotation}
                              for r in self.matched_rules],
            "required": [r.to_json() for r in self.required],
        }


# --------------------------------------------------------------------------- types

_TYPE_WORDS = {
    "number": "a number", "integer": "a whole number", "string": "a string",
    "boolean": "a boolean (true or false)", "date": "a date (YYYY-MM-DD)",
    "dateTime": "a date and time (ISO 8601)", "time": "a time (hh:mm:ss)",
    "dayTimeDuration": "a days-and-time duration such as P2D",
    "yearMonthDuration": "a years-and-months duration such as P3M",
}


class _Mismatch(Exception):
    pass


def coerce(value, type_ref: str | None):
    """Check (and, for ISO strings of temporal types, convert) a FEEL value against a typeRef."""
    if value is None or type_ref is None:
        return value
    t = feel_type(value)
    if type_ref in ("number", "integer"):
        if t != "number":
            raise _Mismatch
        if type_ref == "integer" and value != value.to_integral_value():
            raise _Mismatch
        return value
    if type_ref == "string":
        if t != "string":
            raise _Mismatch
        return value
    if type_ref == "boolean":
        if t != "boolean":
            raise _Mismatch
        return value
    if type_ref == "date":
        if t == "date":
            return value
        if t == "dateTime":
            return value.date()
        if t == "string":
            v = parse_date(value)
            if v is None:
                dtv = parse_datetime(value)
                v = dtv.date() if dtv is not None and "T" in value else None
            if v is not None:
                return v
        raise _Mismatch
    if type_ref == "dateTime":
        if t == "dateTime":
            return value
        if t == "date":
            return dt.datetime(value.year, value.month, value.day)
        if t == "string":
            v = parse_datetime(value)
            if v is not None:
                return v
        raise _Mismatch
    if type_ref == "time":
        if t == "time":
            return value
        if t == "string" and parse_time(value) is not None:
            return parse_time(value)
        raise _Mismatch
    if type_ref in ("dayTimeDuration", "yearMonthDuration"):
        if t == type_ref:
            return value
        if t == "string":
            v = parse_duration(value)
            if v is not None and feel_type(v) == type_ref:
                return v
        raise _Mismatch
    return value


def _show(value) -> str:
    v = to_json_value(value)
    return repr(v) if not isinstance(v, bool) else ("true" if v else "false")


# --------------------------------------------------------------------------- registry

class DecisionRegistry:
    """The deployed decisions, by id, across DMN files."""

    def __init__(self):
        self._models: dict[str, DecisionModel] = {}
        self._decisions: dict[str, Decision] = {}

    def add(self, model: DecisionModel) -> None:
        """Add (or replace, when a model of the same filename is there) a model.
        Raises DecisionDefinitionError if one of its decision ids is defined by another file."""
        problems = []
        for did in model.decisions:
            other = self._decisions.get(did)
            if other is not None and other.filename != model.filename:
                problems.append(Problem(model.filename, did,
                                        f"decision id {did!r} is already defined in {other.filename!r}"))
        if problems:
            raise DecisionDefinitionError(problems)
        self.remove(model.filename)
        self._models[model.filename] = model
        self._decisions.update(model.decisions)

    def remove(self, filename: str) -> None:
        old = self._models.pop(filename, None)
        if old is not None:
            for did in old.decisions:
                if self._decisions.get(did) is old.decisions[did]:
                    del self._decisions[did]

    def get(self, decision_id: str) -> Decision:
        try:
            return self._decisions[decision_id]
        except KeyError:
            raise KeyError(f"no decision with id {decision_id!r} is deployed") from None

    def __contains__(self, decision_id) -> bool:
        return decision_id in self._decisions

    def __iter__(self):
        return iter(self._decisions.values())

    def __len__(self):
        return len(self._decisions)

    @property
    def models(self) -> dict[str, DecisionModel]:
        return dict(self._models)

    def evaluate(self, decision_id: str, context: dict | None = None) -> DecisionResult:
        """Evaluate a decision (and, first, the decisions it requires) against case data."""
        if decision_id not in self._decisions:
            raise DecisionEvaluationError(decision_id, decision_id, f"no decision with id {decision_id!r} is deployed")
        return self._evaluate(self._decisions[decision_id], context or {}, {}, ())

    # ------------------------------------------------------------------ internals

    def _evaluate(self, d: Decision, context: dict, memo: dict, stack: tuple) -> DecisionResult:
        if d.id in memo:
            return memo[d.id]
        if d.id in stack:
            raise DecisionEvaluationError(d.id, d.id, "decisions require each other in a cycle: "
                                          + " -> ".join(stack + (d.id,)))
        required = []
        data = context
        if d.required:
            data = dict(context)
            for rid in d.required:
                rd = self._decisions.get(rid)
                if rd is None:
                    raise DecisionEvaluationError(d.id, rid, f"decision {d.label!r} requires decision {rid!r}, "
                                                  f"which is not deployed")
                r = self._evaluate(rd, context, memo, stack + (d.id,))
                required.append(r)
                data[rd.name] = r.value
                data[rd.id] = r.value
        if d.kind == "literalExpression":
            result = _evaluate_literal(d, data)
        else:
            result = evaluate_table(d, data)
        result.required = required
        memo[d.id] = result
        return result


def _evaluate_literal(d: Decision, data: dict) -> DecisionResult:
    cell = d.literal
    if cell is None or cell.compiled is None:
        raise DecisionEvaluationError(d.id, d.id, f"decision {d.label!r}: its literal expression is not valid FEEL"
                                      + (f": {cell.error}" if cell is not None and cell.error else ""))
    value = cell.compiled.evaluate(Scope(data))
    try:
        value = coerce(value, d.type_ref)
    except _Mismatch:
        raise DecisionEvaluationError(d.id, d.id, f"decision {d.label!r} expects {_TYPE_WORDS[d.type_ref]}, "
                                      f"its expression gave {_show(value)}") from None
    return DecisionResult(decision_id=d.id, decision_name=d.name, inputs={}, outputs=to_python(value),
                          matched_rules=[], value=value)


# --------------------------------------------------------------------------- decision tables

def _inputs_text(d: Decision, values) -> str:
    return ", ".join(f"{inp.display} = {_show(v)}" for inp, v in zip(d.inputs, values))


def evaluate_table(d: Decision, data: dict) -> DecisionResult:
    table = f"table {d.label!r}"
    scope = Scope(data)
    values = []
    for inp in d.inputs:
        expr = inp.expression
        if expr.compiled is None:
            raise DecisionEvaluationError(d.id, inp.id, f"{table}: input {inp.display!r} has an invalid "
                                          f"expression {expr.text!r}: {expr.error}")
        raw = expr.compiled.evaluate(scope)
        try:
            v = coerce(raw, inp.type_ref)
        except _Mismatch:
            raise DecisionEvaluationError(
                d.id, inp.id, f"input {inp.display!r} of {table} expects {_TYPE_WORDS[inp.type_ref]}, "
                              f"got {_show(raw)}") from None
        if v is not None and inp.input_values is not None and inp.input_values.compiled is not None:
            if inp.input_values.compiled.matches(v, scope) is not True:
                raise DecisionEvaluationError(
                    d.id, inp.id, f"input {inp.display!r} of {table} is {_show(v)}, which is not one of the "
                                  f"allowed values {inp.input_values.text}")
        values.append(v)

    first_only = d.hit_policy == "FIRST"
    matched = []
    for rule in d.rules:
        for cell, v in zip(rule.input_entries, values):
            tests = cell.compiled
            if tests is None:
                raise DecisionEvaluationError(d.id, rule.id, f"{table}, rule {rule.index}: input entry "
                                              f"{cell.text!r} is not valid FEEL: {cell.error}")
            if tests.matches(v, scope) is not True:
                break
        else:
            matched.append(rule)
            if first_only:
                break

    hits = [(rule, _rule_outputs(d, rule, scope)) for rule in matched]
    value = _apply_hit_policy(d, hits, values, scope)
    inputs = {inp.display: to_python(v) for inp, v in zip(d.inputs, values)}
    return DecisionResult(
        decision_id=d.id, decision_name=d.name, inputs=inputs, outputs=to_python(value),
        matched_rules=[MatchedRule(id=r.id, index=r.index, annotation=r.annotation, outputs=to_python(od))
                       for r, od in hits],
        value=value)


def _check_output(d: Decision, out: OutputClause, value, where: str):
    try:
        value = coerce(value, out.type_ref)
    except _Mismatch:
        raise DecisionEvaluationError(d.id, out.id, f"output {out.display!r} of table {d.label!r} expects "
                                      f"{_TYPE_WORDS[out.type_ref]}, {where} gives {_show(value)}") from None
    if value is not None and out.output_values is not None and out.output_values.compiled is not None:
        if out.output_values.compiled.matches(value) is not True:
            raise DecisionEvaluationError(d.id, out.id, f"output {out.display!r} of table {d.label!r}: {where} "
                                          f"gives {_show(value)}, which is not one of the outputValues "
                                          f"{out.output_values.text}")
    return value


def _rule_outputs(d: Decision, rule, scope) -> dict:
    od = {}
    for out, cell in zip(d.outputs, rule.output_entries):
        if cell.error:
            raise DecisionEvaluationError(d.id, rule.id, f"table {d.label!r}, rule {rule.index}: output entry "
                                          f"{cell.text!r} is not valid FEEL: {cell.error}")
        v = cell.compiled.evaluate(scope) if cell.compiled is not None else None
        od[out.name] = _check_output(d, out, v, f"rule {rule.index} ({rule.id})")
    return od


def _shape(d: Decision, od: dict):
    return od[d.outputs[0].name] if d.single_output else od


def _priority_key(d: Decision, od: dict):
    key = []
    for out in d.outputs:
        if out.priority_values:
            v = od.get(out.name)
            idx = next((i for i, p in enumerate(out.priority_values) if equals(v, p) is True),
                       len(out.priority_values))
            key.append(idx)
    return tuple(key)


def _same(a: dict, b: dict) -> bool:
    return all(equals(a[k], b[k]) is True for k in a)


def _defaults(d: Decision, scope) -> dict | None:
    if not any(o.default is not None for o in d.outputs):
        return None
    od = {}
    for out in d.outputs:
        if out.default is None:
            od[out.name] = None
            continue
        if out.default.compiled is None:
            raise DecisionEvaluationError(d.id, out.id, f"table {d.label!r}: defaultOutputEntry of output "
                                          f"{out.display!r} is not valid FEEL: {out.default.error}")
        od[out.name] = _check_output(d, out, out.default.compiled.evaluate(scope), "the default output")
    return od


def _rule_list(hits) -> str:
    return ", ".join(f"{r.index} ({r.id})" for r, _ in hits)


def _apply_hit_policy(d: Decision, hits, values, scope):
    hp = d.hit_policy
    table = f"table {d.label!r}"
    if not hits:
        od = _defaults(d, scope)
        if hp in SINGLE_HIT:
            if od is None:
                raise DecisionEvaluationError(d.id, d.id, f"no rule of {table} matched the inputs "
                                              f"{_inputs_text(d, values)} and the table has no default output")
            return _shape(d, od)
        results = [_shape(d, od)] if od is not None else []
        return _aggregate(d, results)

    if hp == "UNIQUE":
        if len(hits) > 1:
            raise DecisionEvaluationError(
                d.id, hits[1][0].id, f"{table} has hit policy UNIQUE but rules {_rule_list(hits)} all match the "
                                     f"inputs {_inputs_text(d, values)}")
        return _shape(d, hits[0][1])
    if hp == "ANY":
        first = hits[0][1]
        differing = [h for h in hits[1:] if not _same(first, h[1])]
        if differing:
            raise DecisionEvaluationError(
                d.id, differing[0][0].id, f"{table} has hit policy ANY but rules {_rule_list(hits)} match the "
                                          f"inputs {_inputs_text(d, values)} with different outputs")
        return _shape(d, first)
    if hp == "FIRST":
        return _shape(d, hits[0][1])
    if hp == "PRIORITY":
        best = min(hits, key=lambda h: _priority_key(d, h[1]))  # min is stable: rule order breaks ties
        return _shape(d, best[1])
    if hp == "OUTPUT ORDER":
        ordered = sorted(hits, key=lambda h: _priority_key(d, h[1]))
        return [_shape(d, od) for _, od in ordered]
    if hp in ("RULE ORDER", "COLLECT"):
        return _aggregate(d, [_shape(d, od) for _, od in hits])
    raise DecisionEvaluationError(d.id, d.id, f"{table}: unsupported hit policy {hp!r}")  # pragma: no cover


def _aggregate(d: Decision, results: list):
    agg = d.aggregation
    if d.hit_policy != "COLLECT" or not agg:
        return results
    if agg == "COUNT":
        return Decimal(len(results))
    items = [r for r in results if r is not None]
    if not items:
        return None
    if agg == "SUM":
        if not all(isinstance(x, Decimal) for x in items):
            raise DecisionEvaluationError(d.id, d.id, f"table {d.label!r}: COLLECT SUM needs numbers, got "
                                          f"{', '.join(_show(x) for x in items)}")
        total = Decimal(0)
        for x in items:
            total = CTX.add(total, x)
        return total
    kinds = {feel_type(x) for x in items}
    if len(kinds) != 1 or kinds & {"boolean", "list", "context", "other"}:
        raise DecisionEvaluationError(d.id, d.id, f"table {d.label!r}: COLLECT {agg} needs comparable values, "
                                      f"got {', '.join(_show(x) for x in items)}")
    return min(items) if agg == "MIN" else max(items)


__all__ = ["DecisionEvaluationError", "DecisionRegistry", "DecisionResult", "MatchedRule", "coerce",
           "evaluate_table", "YMDuration", "to_feel"]
