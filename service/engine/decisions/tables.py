"""Decision tables (DMN 1.5 chapter 8): loading, hit policies, typed inputs and outputs, static checks.

Two modes: *standard* follows the DMN standard (a table that cannot give a result gives null);
*strict*, the service's default, raises an error that names the table, rules and inputs, so a case
never silently takes a wrong route.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import DecisionEvaluationError, Problem
from .feel import (CTX, Expression, FeelSyntaxError, Scope, UnaryTests, equals, feel_type, intervals_overlap,
                   parse_date, parse_datetime, parse_duration, parse_time, to_json_value)
from .types import coerce as coerce_to_type
from .xml import child, children, text_of

HIT_POLICIES = {
    "UNIQUE": "UNIQUE", "U": "UNIQUE", "FIRST": "FIRST", "F": "FIRST", "PRIORITY": "PRIORITY", "P": "PRIORITY",
    "ANY": "ANY", "A": "ANY", "COLLECT": "COLLECT", "C": "COLLECT",
    "RULE ORDER": "RULE ORDER", "R": "RULE ORDER", "RULE_ORDER": "RULE ORDER",
    "OUTPUT ORDER": "OUTPUT ORDER", "O": "OUTPUT ORDER", "OUTPUT_ORDER": "OUTPUT ORDER",
}
SINGLE_HIT = {"UNIQUE", "FIRST", "PRIORITY", "ANY"}
AGGREGATIONS = {"SUM", "MIN", "MAX", "COUNT"}

# typeRef spellings (DMN 1.1 Camunda, FEEL, XSD) -> the strict mode's type words
_STRICT_TYPES = {
    "string": "string", "number": "number", "decimal": "number", "double": "number", "float": "number",
    "integer": "integer", "int": "integer", "long": "integer", "boolean": "boolean", "date": "date",
    "datetime": "dateTime", "date and time": "dateTime", "time": "time",
    "daytimeduration": "dayTimeDuration", "days and time duration": "dayTimeDuration",
    "duration": "dayTimeDuration", "yearmonthduration": "yearMonthDuration",
    "years and months duration": "yearMonthDuration", "any": None, "context": None, "list": None,
}
TYPE_WORDS = {
    "number": "a number", "integer": "a whole number", "string": "a string",
    "boolean": "a boolean (true or false)", "date": "a date (YYYY-MM-DD)",
    "dateTime": "a date and time (ISO 8601)", "time": "a time (hh:mm:ss)",
    "dayTimeDuration": "a days-and-time duration such as P2D",
    "yearMonthDuration": "a years-and-months duration such as P3M",
}


@dataclass
class LoadContext:
    """What loading one DMN file needs: its name, the FEEL names in scope, its item definitions."""
    filename: str
    names: set
    types: dict
    problems: list
    aliases: dict = field(default_factory=dict)   # itemDefinition name -> base typeRef text, for strict mode
    feel_problems: list = field(default_factory=list)   # FEEL that does not parse, reported by check_decisions

    def strict_type(self, type_ref: str | None) -> str | None:
        seen, t = set(), (type_ref or "").strip()
        while t:
            bare = t.split(":", 1)[1] if t.split(":", 1)[0] in ("feel", "xsd", "FEEL") and ":" in t else t
            if bare.lower() in _STRICT_TYPES:
                return _STRICT_TYPES[bare.lower()]
            if t in seen or t not in self.aliases:
                return None
            seen.add(t)
            t = self.aliases[t] or ""
        return None


@dataclass
class Cell:
    """One FEEL text in the model, compiled once at load."""
    id: str | None
    text: str
    compiled: Any = None          # UnaryTests or Expression
    error: str | None = None      # the parse error, when it does not parse


def compile_cell(cell: Cell, kind: str, names) -> Cell:
    try:
        cell.compiled = UnaryTests(cell.text, names) if kind == "tests" else Expression(cell.text, names)
    except FeelSyntaxError as e:
        cell.error = e.message
    return cell


@dataclass
class InputClause:
    id: str | None
    label: str | None
    expression: Cell
    type_ref: str | None          # the strict mode's type word, or None (any)
    type_ref_text: str | None
    input_values: Cell | None = None

    @property
    def display(self) -> str:
        return self.label or self.expression.text


@dataclass
class OutputClause:
    id: str | None
    name: str
    label: str | None
    type_ref: str | None
    type_ref_text: str | None
    output_values: Cell | None = None
    priority_values: list | None = None   # constant FEEL values, in order, from outputValues
    default: Cell | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass
class Rule:
    id: str
    index: int                    # 1-based
    annotation: str | None
    input_entries: list[Cell]
    output_entries: list[Cell]


@dataclass
class DecisionTable:
    id: str | None
    label: str                    # the decision's (or BKM's) name, for messages
    owner: str                    # the decision's id, for errors
    hit_policy: str
    aggregation: str | None = None
    inputs: list[InputClause] = field(default_factory=list)
    outputs: list[OutputClause] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    types: dict = field(default_factory=dict)

    @property
    def single_output(self) -> bool:
        return len(self.outputs) == 1


# --------------------------------------------------------------------------- loading

def load_table(el, owner: str, label: str, ctx: LoadContext) -> DecisionTable:
    """A <decisionTable> element; structural problems are added to ctx.problems."""
    f, problems = ctx.filename, ctx.problems
    hp_raw = (el.get("hitPolicy") or "UNIQUE").strip()
    hp = HIT_POLICIES.get(hp_raw.upper())
    if hp is None:
        problems.append(Problem(f, owner, f"table {label!r}: unknown hitPolicy {hp_raw!r}"))
    t = DecisionTable(id=el.get("id"), label=label, owner=owner, hit_policy=hp or hp_raw, types=ctx.types)
    agg = el.get("aggregation")
    if agg:
        agg = agg.strip().upper()
        if agg not in AGGREGATIONS:
            problems.append(Problem(f, owner, f"table {label!r}: unknown aggregation {el.get('aggregation')!r}"))
        elif hp != "COLLECT":
            problems.append(Problem(f, owner,
                                    f"table {label!r}: aggregation {agg} is only allowed with hit policy COLLECT"))
        t.aggregation = agg
    _load_inputs(t, el, ctx)
    _load_outputs(t, el, ctx)
    _load_rules(t, el, ctx)
    return t


def _load_inputs(t: DecisionTable, el, ctx: LoadContext) -> None:
    for i, inp in enumerate(children(el, "input"), start=1):
        expr_el = child(inp, "inputExpression")
        text = text_of(expr_el)
        label = inp.get("label")
        if expr_el is None or not text:
            ctx.problems.append(Problem(ctx.filename, inp.get("id") or t.owner,
                                        f"table {t.label!r}: input {label or i!r} has no inputExpression"))
            continue
        tr = expr_el.get("typeRef")
        clause = InputClause(id=inp.get("id"), label=label,
                             expression=compile_cell(Cell(expr_el.get("id") or inp.get("id"), text), "expr",
                                                     ctx.names),
                             type_ref=ctx.strict_type(tr), type_ref_text=tr)
        iv = text_of(child(inp, "inputValues"))
        if iv:
            clause.input_values = compile_cell(Cell(inp.get("id"), iv), "tests", ctx.names)
        t.inputs.append(clause)


def _load_outputs(t: DecisionTable, el, ctx: LoadContext) -> None:
    out_els = children(el, "output")
    if not out_els:
        ctx.problems.append(Problem(ctx.filename, t.owner, f"table {t.label!r} has no output"))
    for i, out in enumerate(out_els, start=1):
        oname = out.get("name") or out.get("label")
        if not oname:
            oname = (el.get("outputLabel") or t.label) if len(out_els) == 1 else f"output{i}"
        tr = out.get("typeRef")
        if not tr and len(out_els) == 1:
            tr = el.get("typeRef")
        # the table's typeRef is the decision's (maybe a list of results), not each output's
        clause = OutputClause(id=out.get("id"), name=oname, label=out.get("label"),
                              type_ref=ctx.strict_type(tr), type_ref_text=out.get("typeRef"))
        ov = text_of(child(out, "outputValues"))
        if ov:
            clause.output_values = compile_cell(Cell(out.get("id"), ov), "tests", ctx.names)
            if clause.output_values.compiled is not None:
                clause.priority_values = _constant_values(clause.output_values.compiled)
        dv = text_of(child(out, "defaultOutputEntry"))
        if dv:
            clause.default = compile_cell(Cell(out.get("id"), dv), "expr", ctx.names)
        t.outputs.append(clause)
    if t.aggregation and len(t.outputs) > 1:
        ctx.problems.append(Problem(ctx.filename, t.owner,
                                    f"table {t.label!r}: aggregation {t.aggregation} needs a single output"))


def _load_rules(t: DecisionTable, el, ctx: LoadContext) -> None:
    n_in, n_out = len(t.inputs), len(t.outputs)
    for index, rule_el in enumerate(children(el, "rule"), start=1):
        rid = rule_el.get("id") or f"rule{index}"
        ins, outs = children(rule_el, "inputEntry"), children(rule_el, "outputEntry")
        if len(ins) != n_in or len(outs) != n_out:
            ctx.problems.append(Problem(ctx.filename, rid,
                                        f"table {t.label!r}, rule {index}: has {len(ins)} input and {len(outs)} "
                                        f"output entries, the table has {n_in} inputs and {n_out} outputs"))
            continue
        desc = child(rule_el, "description")
        annotation = (desc.text or "").strip() if desc is not None and desc.text else None
        in_cells = [compile_cell(Cell(e.get("id"), text_of(e) or ""), "tests", ctx.names) for e in ins]
        out_cells = []
        for e in outs:
            text = text_of(e) or ""
            cell = Cell(e.get("id"), text)
            out_cells.append(compile_cell(cell, "expr", ctx.names) if text else cell)  # empty output -> null
        t.rules.append(Rule(id=rid, index=index, annotation=annotation or None,
                            input_entries=in_cells, output_entries=out_cells))


def _constant_values(tests: UnaryTests) -> list | None:
    iv = tests.static_intervals()
    if iv is None:
        return None
    out = []
    for lo, lc, hi, hc in iv:
        if lo is None or hi is None or not (lc and hc) or equals(lo, hi) is not True:
            return None
        out.append(lo)
    return out


# --------------------------------------------------------------------------- strict typing

class TypeMismatch(Exception):
    """A value that does not meet a strict-mode type."""


def strict_coerce(value, type_ref: str | None):
    """Check (and, for ISO strings of temporal types, convert) a value against a strict-mode type word."""
    if value is None or type_ref is None:
        return value
    t = feel_type(value)
    if type_ref in ("number", "integer"):
        if t != "number" or (type_ref == "integer" and value != value.to_integral_value()):
            raise TypeMismatch
        return value
    if type_ref in ("string", "boolean"):
        if t != type_ref:
            raise TypeMismatch
        return value
    if t == type_ref:
        return value
    if type_ref == "date" and t == "dateTime":
        return value.date()
    if type_ref == "dateTime" and t == "date":
        return dt.datetime(value.year, value.month, value.day)
    if t == "string":
        v = _parse_as(value, type_ref)
        if v is not None and feel_type(v) == type_ref:
            return v
    raise TypeMismatch


def _parse_as(text: str, type_ref: str):
    if type_ref == "date":
        v = parse_date(text)
        if v is None and "T" in text:
            dtv = parse_datetime(text)
            v = dtv.date() if dtv is not None else None
        return v
    return {"dateTime": parse_datetime, "time": parse_time, "dayTimeDuration": parse_duration,
            "yearMonthDuration": parse_duration}.get(type_ref, lambda s: None)(text)


def show(value) -> str:
    v = to_json_value(value)
    return repr(v) if not isinstance(v, bool) else ("true" if v else "false")


# --------------------------------------------------------------------------- evaluation

@dataclass
class TableOutcome:
    value: Any
    inputs: list                  # input values, in column order
    hits: list                    # (Rule, {output name: value}) for every matched rule


class _Evaluation:
    """One evaluation of a table: strict raises, standard makes the result null."""

    def __init__(self, table: DecisionTable, scope: Scope, strict: bool):
        self.t, self.scope, self.strict = table, scope, strict
        self.where = f"table {table.label!r}"

    def fail(self, element, message: str):
        raise DecisionEvaluationError(self.t.owner, element, message)

    def input_values(self) -> list:
        values = []
        for inp in self.t.inputs:
            expr = inp.expression
            if expr.compiled is None:
                self.fail(inp.id, f"{self.where}: input {inp.display!r} has an invalid expression "
                                  f"{expr.text!r}: {expr.error}")
            raw = expr.compiled.evaluate(self.scope)
            v = self.check_input(inp, raw)
            values.append(v)
        return values

    def check_input(self, inp: InputClause, raw):
        if not self.strict:
            v = raw
        else:
            try:
                v = strict_coerce(raw, inp.type_ref)
            except TypeMismatch:
                self.fail(inp.id, f"input {inp.display!r} of {self.where} expects {TYPE_WORDS[inp.type_ref]}, "
                                  f"got {show(raw)}")
        if v is not None and inp.input_values is not None and inp.input_values.compiled is not None:
            if inp.input_values.compiled.matches(v, self.scope) is not True:
                self.fail(inp.id, f"input {inp.display!r} of {self.where} is {show(v)}, which is not one of the "
                                  f"allowed values {inp.input_values.text}")
        return v

    def matching_rules(self, values) -> list:
        first_only = self.t.hit_policy == "FIRST"
        matched = []
        for rule in self.t.rules:
            for cell, v in zip(rule.input_entries, values):
                if cell.compiled is None:
                    self.fail(rule.id, f"{self.where}, rule {rule.index}: input entry {cell.text!r} is not valid "
                                       f"FEEL: {cell.error}")
                if cell.compiled.matches(v, self.scope) is not True:
                    break
            else:
                matched.append(rule)
                if first_only:
                    break
        return matched

    def check_output(self, out: OutputClause, value, where: str):
        if self.strict:
            try:
                value = strict_coerce(value, out.type_ref)
            except TypeMismatch:
                self.fail(out.id, f"output {out.display!r} of {self.where} expects {TYPE_WORDS[out.type_ref]}, "
                                  f"{where} gives {show(value)}")
        elif out.type_ref_text:
            value = coerce_to_type(value, out.type_ref_text, self.t.types)
        if value is not None and out.output_values is not None and out.output_values.compiled is not None:
            if out.output_values.compiled.matches(value) is not True:
                self.fail(out.id, f"output {out.display!r} of {self.where}: {where} gives {show(value)}, which "
                                  f"is not one of the outputValues {out.output_values.text}")
        return value

    def rule_outputs(self, rule: Rule) -> dict:
        od = {}
        for out, cell in zip(self.t.outputs, rule.output_entries):
            if cell.error:
                self.fail(rule.id, f"{self.where}, rule {rule.index}: output entry {cell.text!r} is not valid "
                                   f"FEEL: {cell.error}")
            v = cell.compiled.evaluate(self.scope) if cell.compiled is not None else None
            od[out.name] = self.check_output(out, v, f"rule {rule.index} ({rule.id})")
        return od

    def defaults(self) -> dict | None:
        if not any(o.default is not None for o in self.t.outputs):
            return None
        od = {}
        for out in self.t.outputs:
            if out.default is None:
                od[out.name] = None
            elif out.default.compiled is None:
                self.fail(out.id, f"{self.where}: defaultOutputEntry of output {out.display!r} is not valid FEEL: "
                                  f"{out.default.error}")
            else:
                od[out.name] = self.check_output(out, out.default.compiled.evaluate(self.scope), "the default output")
        return od


def evaluate_table(table: DecisionTable, scope: Scope, strict: bool = True) -> TableOutcome:
    """Evaluate a decision table in a scope; in standard mode an error makes the value null."""
    ev = _Evaluation(table, scope, strict)
    values: list = []
    hits: list = []
    try:
        values = ev.input_values()
        hits = [(rule, ev.rule_outputs(rule)) for rule in ev.matching_rules(values)]
        value = _apply_hit_policy(ev, hits, values)
    except DecisionEvaluationError:
        if strict:
            raise
        value = None
    return TableOutcome(value, values, hits)


def _inputs_text(t: DecisionTable, values) -> str:
    return ", ".join(f"{inp.display} = {show(v)}" for inp, v in zip(t.inputs, values))


def _shape(t: DecisionTable, od: dict):
    return od[t.outputs[0].name] if t.single_output else od


def _priority_key(t: DecisionTable, od: dict):
    key = []
    for out in t.outputs:
        if out.priority_values:
            v = od.get(out.name)
            key.append(next((i for i, p in enumerate(out.priority_values) if equals(v, p) is True),
                            len(out.priority_values)))
    return tuple(key)


def _rule_list(hits) -> str:
    return ", ".join(f"{r.index} ({r.id})" for r, _ in hits)


def _apply_hit_policy(ev: _Evaluation, hits, values):
    t, hp = ev.t, ev.t.hit_policy
    if not hits:
        od = ev.defaults()
        if hp in SINGLE_HIT:
            if od is None:
                if not ev.strict:
                    return None
                ev.fail(t.owner, f"no rule of {ev.where} matched the inputs {_inputs_text(t, values)} and the table "
                                 f"has no default output")
            return _shape(t, od)
        return _aggregate(ev, [_shape(t, od)] if od is not None else [])
    if hp == "UNIQUE" and len(hits) > 1:
        ev.fail(hits[1][0].id, f"{ev.where} has hit policy UNIQUE but rules {_rule_list(hits)} all match the "
                               f"inputs {_inputs_text(t, values)}")
    if hp == "ANY":
        first = hits[0][1]
        differing = [h for h in hits[1:] if not all(equals(first[k], h[1][k]) is True for k in first)]
        if differing:
            ev.fail(differing[0][0].id, f"{ev.where} has hit policy ANY but rules {_rule_list(hits)} match the "
                                        f"inputs {_inputs_text(t, values)} with different outputs")
    if hp in ("UNIQUE", "ANY", "FIRST"):
        return _shape(t, hits[0][1])
    if hp == "PRIORITY":
        return _shape(t, min(hits, key=lambda h: _priority_key(t, h[1]))[1])  # min is stable: rule order breaks ties
    if hp == "OUTPUT ORDER":
        return [_shape(t, od) for _, od in sorted(hits, key=lambda h: _priority_key(t, h[1]))]
    if hp in ("RULE ORDER", "COLLECT"):
        return _aggregate(ev, [_shape(t, od) for _, od in hits])
    ev.fail(t.owner, f"{ev.where}: unsupported hit policy {hp!r}")


def _aggregate(ev: _Evaluation, results: list):
    t, agg = ev.t, ev.t.aggregation
    if t.hit_policy != "COLLECT" or not agg:
        return results
    if agg == "COUNT":
        return Decimal(len(results))
    items = [r for r in results if r is not None]
    if not items:
        return None
    if agg == "SUM":
        if not all(isinstance(x, Decimal) for x in items):
            ev.fail(t.owner, f"{ev.where}: COLLECT SUM needs numbers, got {', '.join(show(x) for x in items)}")
        total = Decimal(0)
        for x in items:
            total = CTX.add(total, x)
        return total
    kinds = {feel_type(x) for x in items}
    if len(kinds) != 1 or kinds & {"boolean", "list", "context", "function", "range", "Any"}:
        ev.fail(t.owner, f"{ev.where}: COLLECT {agg} needs comparable values, got "
                         f"{', '.join(show(x) for x in items)}")
    return min(items) if agg == "MIN" else max(items)


# --------------------------------------------------------------------------- deploy-time checks

def check_table(t: DecisionTable, f: str) -> list[Problem]:
    """Cells parse, constant outputs are allowed values, rule ids are unique, PRIORITY/OUTPUT ORDER can
    order, and UNIQUE rules do not overlap where that can be decided from the cells."""
    table, problems = f"table {t.label!r}", []
    for inp in t.inputs:
        if inp.expression.error:
            problems.append(Problem(f, inp.id or t.owner,
                                    f"{table}, input {inp.display!r}: input expression: {inp.expression.error}"))
        if inp.input_values is not None and inp.input_values.error:
            problems.append(Problem(f, inp.id or t.owner,
                                    f"{table}, input {inp.display!r}: inputValues: {inp.input_values.error}"))
    for out in t.outputs:
        if out.output_values is not None and out.output_values.error:
            problems.append(Problem(f, out.id or t.owner,
                                    f"{table}, output {out.display!r}: outputValues: {out.output_values.error}"))
        if out.default is not None and out.default.error:
            problems.append(Problem(f, out.id or t.owner,
                                    f"{table}, output {out.display!r}: defaultOutputEntry: {out.default.error}"))
    problems += _check_rules(t, f, table)
    if t.hit_policy in ("PRIORITY", "OUTPUT ORDER") and not any(o.priority_values for o in t.outputs):
        problems.append(Problem(f, t.owner, f"{table}: hit policy {t.hit_policy} needs outputValues on an output "
                                            f"to order the results by, and none is given"))
    if t.hit_policy == "UNIQUE":
        problems += _unique_overlaps(t, f)
    return problems


def _check_rules(t: DecisionTable, f: str, table: str) -> list[Problem]:
    problems, seen = [], {}
    for rule in t.rules:
        if rule.id in seen:
            problems.append(Problem(f, rule.id, f"{table}: rules {seen[rule.id]} and {rule.index} share the id "
                                                f"{rule.id!r}"))
        else:
            seen[rule.id] = rule.index
        where = f"{table}, rule {rule.index} ({rule.id})"
        for inp, cell in zip(t.inputs, rule.input_entries):
            if cell.error:
                problems.append(Problem(f, rule.id, f"{where}, input {inp.display!r}: {cell.text!r}: {cell.error}"))
        for out, cell in zip(t.outputs, rule.output_entries):
            if cell.error:
                problems.append(Problem(f, rule.id, f"{where}, output {out.display!r}: {cell.text!r}: {cell.error}"))
            elif (cell.compiled is not None and out.output_values is not None
                  and out.output_values.compiled is not None and cell.compiled.is_constant):
                if out.output_values.compiled.matches(cell.compiled.evaluate({})) is not True:
                    problems.append(Problem(f, rule.id, f"{where}, output {out.display!r}: {cell.text} is not one "
                                                         f"of the outputValues {out.output_values.text}"))
    return problems


def _unique_overlaps(t: DecisionTable, filename: str) -> list[Problem]:
    cols = [[c.compiled.static_intervals() if c.compiled is not None else None for c in rule.input_entries]
            for rule in t.rules]
    out = []
    for i in range(len(t.rules)):
        for j in range(i + 1, len(t.rules)):
            if all(a is not None and b is not None and any(intervals_overlap(x, y) for x in a for y in b)
                   for a, b in zip(cols[i], cols[j])):
                ri, rj = t.rules[i], t.rules[j]
                out.append(Problem(filename, rj.id,
                                   f"table {t.label!r} has hit policy UNIQUE but rules {ri.index} ({ri.id}) and "
                                   f"{rj.index} ({rj.id}) overlap: some inputs match both"))
    return out
