"""DMN models: reading ``<definitions>`` into decisions, input data, business knowledge models, decision
services, item definitions and imports, every expression compiled once at load."""
from __future__ import annotations

from dataclasses import dataclass, field

from .boxed import Boxed, compile_boxed, declared_names, expression_child
from .errors import DecisionDefinitionError, Problem
from .feel import FeelSyntaxError, UnaryTests
from .tables import Cell, DecisionTable, LoadContext, check_table, compile_cell, evaluate_table, load_table
from .types import ItemDef, canonical
from .xml import child, children, href_id, href_namespace, local, text_of

__all__ = ["Decision", "DecisionModel", "InputData", "BusinessKnowledgeModel", "DecisionService",
           "load_decisions", "check_decisions", "Problem", "DecisionDefinitionError"]


@dataclass
class Decision:
    id: str
    name: str
    kind: str = "decisionTable"            # the logic's element name, or "none"
    logic: Boxed | None = None
    table: DecisionTable | None = None
    literal: Cell | None = None            # a top-level literal expression, for deploy-time checks
    required: list[str] = field(default_factory=list)        # ids of required decisions
    required_refs: list[tuple] = field(default_factory=list)  # (namespace or None, id) of required decisions
    required_inputs: list[str] = field(default_factory=list)  # names of required input data
    knowledge: list[tuple] = field(default_factory=list)      # (namespace or None, id) of BKMs / services
    type_ref: str | None = None            # the variable's typeRef, as written
    filename: str = ""
    namespace: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.id

    # a table decision's table, seen through the decision (as the engine's explanations use it)
    hit_policy = property(lambda self: self.table.hit_policy if self.table else None)
    aggregation = property(lambda self: self.table.aggregation if self.table else None)
    inputs = property(lambda self: self.table.inputs if self.table else [])
    outputs = property(lambda self: self.table.outputs if self.table else [])
    rules = property(lambda self: self.table.rules if self.table else [])
    table_id = property(lambda self: self.table.id if self.table else None)
    single_output = property(lambda self: bool(self.table) and self.table.single_output)


@dataclass
class InputData:
    id: str
    name: str
    type_ref: str | None = None


@dataclass
class BusinessKnowledgeModel:
    id: str
    name: str
    logic: Boxed                           # evaluates to the BKM's Function
    knowledge: list[tuple] = field(default_factory=list)


@dataclass
class DecisionService:
    id: str
    name: str
    output_decisions: list[tuple]          # (namespace or None, id)
    input_decisions: list[tuple]
    input_data: list[tuple]
    type_ref: str | None = None


@dataclass
class DecisionModel:
    filename: str
    namespace: str | None
    name: str | None
    decisions: dict[str, Decision]
    input_data: dict[str, str] = field(default_factory=dict)     # id -> name
    inputs: dict[str, InputData] = field(default_factory=dict)   # id -> input data
    bkms: dict[str, BusinessKnowledgeModel] = field(default_factory=dict)
    services: dict[str, DecisionService] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)        # import name -> namespace
    types: dict[str, ItemDef] = field(default_factory=dict)
    feel_problems: list[Problem] = field(default_factory=list)

    def by_name(self, name: str) -> Decision | None:
        return next((d for d in self.decisions.values() if d.name == name), None)

    def element_by_name(self, name: str):
        """A decision, BKM or decision service of this model by its name."""
        for group in (self.decisions, self.bkms, self.services):
            for el in group.values():
                if el.name == name:
                    return el
        return None


# --------------------------------------------------------------------------- item definitions

def _item_definition(el, types: dict, name: str) -> ItemDef:
    """An itemDefinition (or a nested itemComponent); nested definitions are registered as ``name.component``."""
    tr = child(el, "typeRef")
    item = ItemDef(name=name, base=canonical((tr.text or "").strip()) if tr is not None else None,
                   is_collection=(el.get("isCollection") or "false").lower() == "true")
    components = children(el, "itemComponent")
    if components:
        item.components = {c.get("name"): _component_type(c, types, f"{name}.{c.get('name')}") for c in components}
    fn = child(el, "functionItem")
    if fn is not None:
        params = tuple(canonical(p.get("typeRef") or "Any") for p in children(fn, "parameters"))
        item.function = ("function", params, canonical(fn.get("outputTypeRef") or "Any"))
    allowed_text = text_of(child(el, "allowedValues"))
    if allowed_text:
        try:
            item.allowed = UnaryTests(allowed_text)
        except FeelSyntaxError:
            item.allowed = None
    return item


def _component_type(el, types: dict, qualified: str):
    """A component's type: its typeRef when plain, else the nested definition registered under ``qualified``."""
    tr = child(el, "typeRef")
    plain = (tr is not None and not children(el, "itemComponent") and child(el, "allowedValues") is None
             and (el.get("isCollection") or "") != "true")
    if plain:
        return canonical((tr.text or "").strip())
    types[qualified] = _item_definition(el, types, qualified)
    return qualified


def _load_types(root, ctx: LoadContext) -> None:
    for el in children(root, "itemDefinition"):
        name = el.get("name")
        if not name:
            continue
        item = _item_definition(el, ctx.types, name)
        ctx.types[name] = item
        tr = child(el, "typeRef")
        simple = tr is not None and not item.is_collection and not item.components
        ctx.aliases[name] = (tr.text or "").strip() if simple else None


# --------------------------------------------------------------------------- loading

def _refs(el, tag: str, attr_el: str | None = None) -> list[tuple]:
    out = []
    for r in children(el, tag):
        target = child(r, attr_el) if attr_el else r
        if target is not None and target.get("href"):
            out.append((href_namespace(target.get("href")), href_id(target.get("href"))))
    return out


def _decision(el, ctx: LoadContext, namespace, strict: bool) -> Decision | None:
    did = el.get("id") or el.get("name")
    name = el.get("name") or did
    var = child(el, "variable")
    d = Decision(id=did, name=name, filename=ctx.filename, namespace=namespace,
                 type_ref=var.get("typeRef") if var is not None else None)
    for req in children(el, "informationRequirement"):
        rd, ri = child(req, "requiredDecision"), child(req, "requiredInput")
        if rd is not None and rd.get("href"):
            d.required_refs.append((href_namespace(rd.get("href")), href_id(rd.get("href"))))
            d.required.append(href_id(rd.get("href")))
        if ri is not None and ri.get("href"):
            d.required_inputs.append(href_id(ri.get("href")))
    d.knowledge = _refs(el, "knowledgeRequirement", "requiredKnowledge")
    logic = expression_child(el)
    if logic is None:
        d.kind = "none"
        if strict:
            kinds = [local(c.tag) for c in el if local(c.tag) not in
                     ("variable", "informationRequirement", "knowledgeRequirement", "authorityRequirement",
                      "description", "extensionElements", "question", "allowedAnswers")]
            what = f" (it has {', '.join(kinds)}, which is not supported)" if kinds else ""
            ctx.problems.append(Problem(ctx.filename, did, f"decision {name!r} has no decisionTable or "
                                                           f"literalExpression{what}"))
        return d
    d.kind = local(logic.tag)
    if d.kind == "literalExpression":
        text = text_of(logic)
        if not text and strict:
            ctx.problems.append(Problem(ctx.filename, did, f"literal expression of decision {name!r} is empty"))
        d.literal = compile_cell(Cell(logic.get("id") or did, text or "null"), "expr", ctx.names)
        expr = d.literal.compiled
        d.logic = (lambda s, strict: expr.run(s)) if expr is not None else None
        return d
    if d.kind == "decisionTable":
        d.table = load_table(logic, did, name, ctx)
        d.logic = lambda s, strict, t=d.table: evaluate_table(t, s, strict).value
        return d
    d.logic = compile_boxed(logic, did, name, ctx)
    return d


def _bkm(el, ctx: LoadContext) -> BusinessKnowledgeModel:
    bid = el.get("id") or el.get("name")
    name = el.get("name") or bid
    logic = child(el, "encapsulatedLogic")  # a functionDefinition under another element name
    return BusinessKnowledgeModel(id=bid, name=name, logic=compile_boxed(logic, bid, name, ctx),
                                  knowledge=_refs(el, "knowledgeRequirement", "requiredKnowledge"))


def _service(el) -> DecisionService:
    sid = el.get("id") or el.get("name")
    var = child(el, "variable")
    return DecisionService(id=sid, name=el.get("name") or sid, output_decisions=_refs(el, "outputDecision"),
                           input_decisions=_refs(el, "inputDecision"), input_data=_refs(el, "inputData"),
                           type_ref=var.get("typeRef") if var is not None else None)


def load_decisions(root, filename: str, strict: bool = True) -> DecisionModel:
    """Read a parsed DMN ``<definitions>`` element (any DMN 1.1-1.5 namespace).

    Raises DecisionDefinitionError for structural errors. FEEL that does not parse is kept with its error,
    reported by :func:`check_decisions` and raised when evaluated. ``strict=False`` accepts what the
    standard accepts (decisions without logic, models of only knowledge models) for standard-mode use."""
    if root is None or local(root.tag) != "definitions":
        raise DecisionDefinitionError([Problem(filename, None,
                                               "not a DMN file: the root element must be <definitions>")])
    namespace = root.get("namespace")
    ctx = LoadContext(filename=filename, names=declared_names(root), types={}, problems=[])
    _load_types(root, ctx)
    inputs = {}
    for el in children(root, "inputData"):
        var = child(el, "variable")
        iid = el.get("id") or el.get("name")
        inputs[iid] = InputData(iid, el.get("name") or iid, var.get("typeRef") if var is not None else None)
    decision_els = children(root, "decision")
    if not decision_els and strict:
        raise DecisionDefinitionError([Problem(filename, None, "the file defines no <decision>")])
    decisions: dict[str, Decision] = {}
    for el in decision_els:
        d = _decision(el, ctx, namespace, strict)
        if d.id in decisions:
            ctx.problems.append(Problem(filename, d.id, f"duplicate decision id {d.id!r}"))
            continue
        decisions[d.id] = d
    bkms = {b.id: b for b in (_bkm(el, ctx) for el in children(root, "businessKnowledgeModel"))}
    services = {s.id: s for s in (_service(el) for el in children(root, "decisionService"))}
    imports = {el.get("name") or "": el.get("namespace") for el in children(root, "import")}
    if ctx.problems:
        raise DecisionDefinitionError(ctx.problems)
    return DecisionModel(filename=filename, namespace=namespace, name=root.get("name"), decisions=decisions,
                         input_data={i.id: i.name for i in inputs.values()}, inputs=inputs, bkms=bkms,
                         services=services, imports=imports, types=ctx.types, feel_problems=ctx.feel_problems)


# --------------------------------------------------------------------------- deploy-time checks

def check_decisions(model: DecisionModel) -> list[Problem]:
    """Deploy-time checks: every FEEL text parses, UNIQUE tables have no overlapping rules (where that can be
    decided from the cells), PRIORITY / OUTPUT ORDER tables have outputValues, rule ids are unique,
    required decisions in the same file exist and have no cycle."""
    f = model.filename
    problems: list[Problem] = []
    for d in model.decisions.values():
        if d.literal is not None and d.literal.error:
            problems.append(Problem(f, d.id, f"decision {d.label!r}: literal expression: {d.literal.error}"))
        if d.table is not None:
            problems += check_table(d.table, f)
    problems += model.feel_problems
    problems += _cycles(model)
    return problems


def _cycles(model: DecisionModel) -> list[Problem]:
    problems, state = [], {}

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

