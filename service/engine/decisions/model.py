"""DMN model: reading ``<definitions>`` into decisions with compiled FEEL cells."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .feel import Expression, FeelSyntaxError, UnaryTests, equals, intervals_overlap


@dataclass(frozen=True)
class Problem:
    file: str
    element: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.element}]" if self.element else "")
        return f"{where}: {self.message}"


class DecisionDefinitionError(Exception):
    """A DMN file that cannot be used; ``problems`` says why."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid decision model")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


HIT_POLICIES = {
    "UNIQUE": "UNIQUE", "U": "UNIQUE",
    "FIRST": "FIRST", "F": "FIRST",
    "PRIORITY": "PRIORITY", "P": "PRIORITY",
    "ANY": "ANY", "A": "ANY",
    "COLLECT": "COLLECT", "C": "COLLECT",
    "RULE ORDER": "RULE ORDER", "R": "RULE ORDER", "RULE_ORDER": "RULE ORDER",
    "OUTPUT ORDER": "OUTPUT ORDER", "O": "OUTPUT ORDER", "OUTPUT_ORDER": "OUTPUT ORDER",
}
SINGLE_HIT = {"UNIQUE", "FIRST", "PRIORITY", "ANY"}
AGGREGATIONS = {"SUM", "MIN", "MAX", "COUNT"}

# typeRef spellings (DMN 1.1 Camunda, FEEL, XSD) -> canonical FEEL type
_TYPE_ALIASES = {
    "string": "string",
    "number": "number", "decimal": "number", "double": "number", "float": "number",
    "integer": "integer", "int": "integer", "long": "integer",
    "boolean": "boolean",
    "date": "date",
    "datetime": "dateTime", "date and time": "dateTime",
    "time": "time",
    "daytimeduration": "dayTimeDuration", "days and time duration": "dayTimeDuration",
    "duration": "dayTimeDuration",
    "yearmonthduration": "yearMonthDuration", "years and months duration": "yearMonthDuration",
    "any": None, "context": None, "list": None,
}


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(el, name):
    return [c for c in el if _local(c.tag) == name]


def _child(el, name):
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text_of(el) -> str | None:
    """The ``<text>`` child (DMN 1.1+) of an element, or None."""
    if el is None:
        return None
    t = _child(el, "text")
    if t is None:
        return None
    return (t.text or "").strip()


@dataclass
class Cell:
    """One FEEL text in the model, compiled once at load."""
    id: str | None
    text: str
    compiled: Any = None          # UnaryTests or Expression
    error: str | None = None      # the parse error, when it does not parse


@dataclass
class InputClause:
    id: str | None
    label: str | None
    expression: Cell
    type_ref: str | None          # canonical FEEL type or None (any)
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
class Decision:
    id: str
    name: str
    hit_policy: str | None = None         # None for a literal-expression decision
    aggregation: str | None = None
    inputs: list[InputClause] = field(default_factory=list)
    outputs: list[OutputClause] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    required: list[str] = field(default_factory=list)        # ids of required decisions
    required_inputs: list[str] = field(default_factory=list)  # names of required input data
    kind: str = "decisionTable"            # or "literalExpression"
    literal: Cell | None = None
    type_ref: str | None = None
    table_id: str | None = None
    filename: str = ""
    namespace: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def single_output(self) -> bool:
        return len(self.outputs) == 1


@dataclass
class DecisionModel:
    filename: str
    namespace: str | None
    name: str | None
    decisions: dict[str, Decision]
    input_data: dict[str, str] = field(default_factory=dict)   # id -> name

    def by_name(self, name: str) -> Decision | None:
        for d in self.decisions.values():
            if d.name == name:
                return d
        return None


# --------------------------------------------------------------------------- loading

def _href_id(href: str | None) -> str | None:
    if not href:
        return None
    return href.rsplit("#", 1)[-1] if "#" in href else href


def _canonical_type(type_ref: str | None, item_defs: dict) -> str | None:
    if not type_ref:
        return None
    seen = set()
    t = type_ref.strip()
    while True:
        bare = t.split(":", 1)[1] if re.match(r"^(feel|xsd|FEEL):", t) else t
        key = bare.lower()
        if key in _TYPE_ALIASES:
            return _TYPE_ALIASES[key]
        # a named itemDefinition that is a plain alias of a simple type
        if t in item_defs and t not in seen:
            seen.add(t)
            base = item_defs[t]
            if base is None:
                return None
            t = base
            continue
        return None


def _compile(cell: Cell, kind: str, names) -> Cell:
    try:
        cell.compiled = UnaryTests(cell.text, names) if kind == "tests" else Expression(cell.text, names)
    except FeelSyntaxError as e:
        cell.error = e.message
    return cell


def load_decisions(root, filename: str) -> DecisionModel:
    """Read a parsed DMN ``<definitions>`` element (any DMN 1.1-1.5 namespace).

    Raises DecisionDefinitionError for structural errors.  Cells that are not valid FEEL are
    kept with their error and reported by :func:`check_decisions`."""
    problems: list[Problem] = []
    if root is None or _local(root.tag) != "definitions":
        raise DecisionDefinitionError([Problem(filename, None, "not a DMN file: the root element must be <definitions>")])
    namespace = root.get("namespace")

    item_defs: dict[str, str | None] = {}
    for it in _children(root, "itemDefinition"):
        tr = _child(it, "typeRef")
        collection = (it.get("isCollection") or "false").lower() == "true"
        base = (tr.text or "").strip() if tr is not None and not collection and not _children(it, "itemComponent") else None
        if it.get("name"):
            item_defs[it.get("name")] = base

    input_data = {el.get("id"): el.get("name") for el in _children(root, "inputData") if el.get("id")}
    decision_els = _children(root, "decision")
    if not decision_els:
        raise DecisionDefinitionError([Problem(filename, None, "the file defines no <decision>")])

    # names that FEEL must be able to refer to, spaces and all
    known_names = {el.get("name") for el in decision_els if el.get("name")}
    known_names |= {n for n in input_data.values() if n}
    known_names |= {el.get("name") for el in _children(root, "businessKnowledgeModel") if el.get("name")}

    decisions: dict[str, Decision] = {}
    for del_ in decision_els:
        did = del_.get("id")
        name = del_.get("name") or did
        if not did:
            problems.append(Problem(filename, name, f"decision {name!r} has no id"))
            continue
        if did in decisions:
            problems.append(Problem(filename, did, f"duplicate decision id {did!r}"))
            continue
        var = _child(del_, "variable")
        d = Decision(id=did, name=name, filename=filename, namespace=namespace,
                     type_ref=_canonical_type(var.get("typeRef") if var is not None else None, item_defs))
        for req in _children(del_, "informationRequirement"):
            rd = _child(req, "requiredDecision")
            ri = _child(req, "requiredInput")
            if rd is not None:
                rid = _href_id(rd.get("href"))
                if rid:
                    d.required.append(rid)
            if ri is not None:
                iid = _href_id(ri.get("href"))
                if iid:
                    d.required_inputs.append(input_data.get(iid, iid))

        table = _child(del_, "decisionTable")
        literal = _child(del_, "literalExpression")
        if table is not None:
            _load_table(d, table, filename, item_defs, known_names, problems)
        elif literal is not None:
            d.kind = "literalExpression"
            text = _text_of(literal)
            if not text:
                problems.append(Problem(filename, did, f"literal expression of decision {name!r} is empty"))
            else:
                d.literal = _compile(Cell(literal.get("id") or did, text), "expr", known_names)
        else:
            kinds = [_local(c.tag) for c in del_ if _local(c.tag) not in
                     ("variable", "informationRequirement", "knowledgeRequirement", "authorityRequirement",
                      "description", "extensionElements", "question", "allowedAnswers")]
            what = f" (it has {', '.join(kinds)}, which is not supported)" if kinds else ""
            problems.append(Problem(filename, did, f"decision {name!r} has no decisionTable or literalExpression{what}"))
        decisions[did] = d

    if problems:
        raise DecisionDefinitionError(problems)
    return DecisionModel(filename=filename, namespace=namespace, name=root.get("name"),
                         decisions=decisions, input_data=input_data)


def _load_table(d: Decision, table, filename, item_defs, names, problems):
    d.kind = "decisionTable"
    d.table_id = table.get("id")
    hp_raw = (table.get("hitPolicy") or "UNIQUE").strip()
    hp = HIT_POLICIES.get(hp_raw.upper())
    if hp is None:
        problems.append(Problem(filename, d.id, f"table {d.label!r}: unknown hitPolicy {hp_raw!r}"))
    d.hit_policy = hp or hp_raw
    agg = table.get("aggregation")
    if agg:
        agg = agg.strip().upper()
        if agg not in AGGREGATIONS:
            problems.append(Problem(filename, d.id, f"table {d.label!r}: unknown aggregation {table.get('aggregation')!r}"))
        elif hp != "COLLECT":
            problems.append(Problem(filename, d.id,
                                    f"table {d.label!r}: aggregation {agg} is only allowed with hit policy COLLECT"))
        d.aggregation = agg

    for i, inp in enumerate(_children(table, "input"), start=1):
        expr_el = _child(inp, "inputExpression")
        text = _text_of(expr_el)
        label = inp.get("label")
        if expr_el is None or not text:
            problems.append(Problem(filename, inp.get("id") or d.id,
                                    f"table {d.label!r}: input {label or i!r} has no inputExpression"))
            continue
        tr = expr_el.get("typeRef")
        clause = InputClause(id=inp.get("id"), label=label,
                             expression=_compile(Cell(expr_el.get("id") or inp.get("id"), text), "expr", names),
                             type_ref=_canonical_type(tr, item_defs), type_ref_text=tr)
        iv = _text_of(_child(inp, "inputValues"))
        if iv:
            clause.input_values = _compile(Cell(inp.get("id"), iv), "tests", names)
        d.inputs.append(clause)

    out_els = _children(table, "output")
    if not out_els:
        problems.append(Problem(filename, d.id, f"table {d.label!r} has no output"))
    for i, out in enumerate(out_els, start=1):
        oname = out.get("name") or out.get("label")
        if not oname:
            oname = (table.get("outputLabel") or d.name) if len(out_els) == 1 else f"output{i}"
        tr = out.get("typeRef")
        if not tr and len(out_els) == 1:
            tr = table.get("typeRef") if _canonical_type(table.get("typeRef"), item_defs) else None
        clause = OutputClause(id=out.get("id"), name=oname, label=out.get("label"),
                              type_ref=_canonical_type(tr, item_defs), type_ref_text=tr)
        ov = _text_of(_child(out, "outputValues"))
        if ov:
            clause.output_values = _compile(Cell(out.get("id"), ov), "tests", names)
            if clause.output_values.compiled is not None:
                clause.priority_values = _constant_values(clause.output_values.compiled)
        dv = _text_of(_child(out, "defaultOutputEntry"))
        if dv:
            clause.default = _compile(Cell(out.get("id"), dv), "expr", names)
        d.outputs.append(clause)
    if d.aggregation and len(d.outputs) > 1:
        problems.append(Problem(filename, d.id, f"table {d.label!r}: aggregation {d.aggregation} needs a single output"))

    n_in, n_out = len(d.inputs), len(d.outputs)
    for index, rule_el in enumerate(_children(table, "rule"), start=1):
        rid = rule_el.get("id") or f"rule{index}"
        ins = _children(rule_el, "inputEntry")
        outs = _children(rule_el, "outputEntry")
        if len(ins) != n_in or len(outs) != n_out:
            problems.append(Problem(filename, rid,
                                    f"table {d.label!r}, rule {index}: has {len(ins)} input and {len(outs)} output "
                                    f"entries, the table has {n_in} inputs and {n_out} outputs"))
            continue
        desc = _child(rule_el, "description")
        annotation = (desc.text or "").strip() if desc is not None and desc.text else None
        in_cells = [_compile(Cell(e.get("id"), _text_of(e) or ""), "tests", names) for e in ins]
        out_cells = []
        for e in outs:
            text = _text_of(e) or ""
            cell = Cell(e.get("id"), text)
            out_cells.append(_compile(cell, "expr", names) if text else cell)  # empty output -> null
        d.rules.append(Rule(id=rid, index=index, annotation=annotation or None,
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


# --------------------------------------------------------------------------- deploy-time checks

def check_decisions(model: DecisionModel) -> list[Problem]:
    """Deploy-time checks: every cell parses, UNIQUE tables have no overlapping rules (where
    that can be decided from the cells), PRIORITY / OUTPUT ORDER tables have outputValues,
    rule ids are unique, required decisions in the same file exist and have no cycle."""
    f = model.filename
    problems: list[Problem] = []
    for d in model.decisions.values():
        table = f"table {d.label!r}"
        if d.kind == "literalExpression":
            if d.literal is not None and d.literal.error:
                problems.append(Problem(f, d.id, f"decision {d.label!r}: literal expression: {d.literal.error}"))
            continue
        for inp in d.inputs:
            if inp.expression.error:
                problems.append(Problem(f, inp.id or d.id,
                                        f"{table}, input {inp.display!r}: input expression: {inp.expression.error}"))
            if inp.input_values is not None and inp.input_values.error:
                problems.append(Problem(f, inp.id or d.id,
                                        f"{table}, input {inp.display!r}: inputValues: {inp.input_values.error}"))
        for out in d.outputs:
            if out.output_values is not None and out.output_values.error:
                problems.append(Problem(f, out.id or d.id,
                                        f"{table}, output {out.display!r}: outputValues: {out.output_values.error}"))
            if out.default is not None and out.default.error:
                problems.append(Problem(f, out.id or d.id,
                                        f"{table}, output {out.display!r}: defaultOutputEntry: {out.default.error}"))
        seen_rule_ids: dict[str, int] = {}
        for rule in d.rules:
            if rule.id in seen_rule_ids:
                problems.append(Problem(f, rule.id, f"{table}: rules {seen_rule_ids[rule.id]} and {rule.index} "
                                                    f"share the id {rule.id!r}"))
            else:
                seen_rule_ids[rule.id] = rule.index
            for inp, cell in zip(d.inputs, rule.input_entries):
                if cell.error:
                    problems.append(Problem(f, rule.id, f"{table}, rule {rule.index} ({rule.id}), input "
                                                        f"{inp.display!r}: {cell.text!r}: {cell.error}"))
            for out, cell in zip(d.outputs, rule.output_entries):
                if cell.error:
                    problems.append(Problem(f, rule.id, f"{table}, rule {rule.index} ({rule.id}), output "
                                                        f"{out.display!r}: {cell.text!r}: {cell.error}"))
                elif (cell.compiled is not None and out.output_values is not None
                      and out.output_values.compiled is not None and cell.compiled.is_constant):
                    value = cell.compiled.evaluate({})
                    if out.output_values.compiled.matches(value) is not True:
                        problems.append(Problem(f, rule.id, f"{table}, rule {rule.index} ({rule.id}), output "
                                                            f"{out.display!r}: {cell.text} is not one of the "
                                                            f"outputValues {out.output_values.text}"))
        if d.hit_policy in ("PRIORITY", "OUTPUT ORDER"):
            if not any(o.priority_values for o in d.outputs):
                problems.append(Problem(f, d.id, f"{table}: hit policy {d.hit_policy} needs outputValues on an "
                                                 f"output to order the results by, and none is given"))
        if d.hit_policy == "UNIQUE":
            problems.extend(_unique_overlaps(d, f))
    problems.extend(_cycles(model))
    return problems


def _unique_overlaps(d: Decision, filename: str) -> list[Problem]:
    # per rule, per column: list of intervals, or None when undecidable
    cols = []
    for rule in d.rules:
        row = []
        for cell in rule.input_entries:
            if cell.compiled is None:
                row.append(None)
            else:
                row.append(cell.compiled.static_intervals())
        cols.append(row)
    out = []
    for i in range(len(d.rules)):
        for j in range(i + 1, len(d.rules)):
            overlap = True
            for a, b in zip(cols[i], cols[j]):
                if a is None or b is None:
                    overlap = False  # undecidable: assume they don't overlap
                    break
                if not any(intervals_overlap(x, y) for x in a for y in b):
                    overlap = False
                    break
            if overlap:
                ri, rj = d.rules[i], d.rules[j]
                out.append(Problem(filename, rj.id,
                                   f"table {d.label!r} has hit policy UNIQUE but rules {ri.index} ({ri.id}) and "
                                   f"{rj.index} ({rj.id}) overlap: some inputs match both"))
    return out


def _cycles(model: DecisionModel) -> list[Problem]:
    problems = []
    state: dict[str, int] = {}

    def visit(did, path):
        if state.get(did) == 2:
            return
        if state.get(did) == 1:
            cycle = path[path.index(did):] + [did]
            problems.append(Problem(model.filename, did, "decisions require each other in a cycle: "
                                    + " -> ".join(cycle)))
            return
        state[did] = 1
        for r in model.decisions[did].required:
            if r in model.decisions:
                visit(r, path + [did])
        state[did] = 2

    for did in model.decisions:
        visit(did, [])
    return problems
