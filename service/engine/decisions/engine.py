"""Evaluating decisions: decision requirements graphs, knowledge models, decision services, explanations.

Two modes (see ``tables``): *strict*, the service's default, makes a table that cannot decide an error;
*standard* follows the DMN standard (null, typed values coerced to their declared types).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import DecisionDefinitionError, DecisionEvaluationError, Problem
from .feel import (FeelEvaluationError, Function, Limits, Scope, evaluation, to_feel, to_json_value, to_python)
from .interp import state
from .model import Decision, DecisionModel, DecisionService
from .tables import TYPE_WORDS, TableOutcome, TypeMismatch, evaluate_table, show, strict_coerce
from .types import coerce

__all__ = ["DecisionEvaluationError", "DecisionRegistry", "DecisionResult", "MatchedRule", "evaluate_table",
           "to_feel"]


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


def _result(d, value, outcome: TableOutcome | None = None) -> DecisionResult:
    if outcome is None:
        return DecisionResult(d.id, d.name, {}, to_python(value), value=value)
    inputs = {inp.display: to_python(v) for inp, v in zip(d.inputs, outcome.inputs)}
    rules = [MatchedRule(r.id, r.index, r.annotation, to_python(od)) for r, od in outcome.hits]
    return DecisionResult(d.id, d.name, inputs, to_python(value), rules, value=value)


class DecisionRegistry:
    """The deployed decisions, by id, across DMN files; ``strict=False`` evaluates as the standard says."""

    def __init__(self, strict: bool = True, limits: Limits | None = None):
        self.strict = strict
        self.limits = limits
        self._models: dict[str, DecisionModel] = {}
        self._decisions: dict[str, Decision] = {}

    def add(self, model: DecisionModel) -> None:
        """Add (or replace, when a model of the same filename is there) a model.
        Raises DecisionDefinitionError if one of its decision ids is defined by another file."""
        problems = [Problem(model.filename, did, f"decision id {did!r} is already defined in "
                                                 f"{self._decisions[did].filename!r}")
                    for did in model.decisions
                    if did in self._decisions and self._decisions[did].filename != model.filename
                    and self._decisions[did].namespace == model.namespace]
        if problems:
            raise DecisionDefinitionError(problems)
        self.remove(model.filename)
        self._models[model.filename] = model
        for did, d in model.decisions.items():  # ids repeat across namespaces (imports): the first keeps the id
            if did not in self._decisions or self._decisions[did].namespace == model.namespace:
                self._decisions[did] = d

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

    def model_of(self, element_id: str, namespace: str | None = None) -> DecisionModel | None:
        """The model holding a decision, knowledge model or service (in a namespace, when given)."""
        for m in self._models.values():
            if namespace is not None and m.namespace != namespace:
                continue
            if element_id in m.decisions or element_id in m.bkms or element_id in m.services:
                return m
        return None

    def service(self, service_id: str) -> DecisionService:
        m = self.model_of(service_id)
        if m is None or service_id not in m.services:
            raise KeyError(f"no decision service with id {service_id!r} is deployed")
        return m.services[service_id]

    def evaluate(self, decision_id: str, context: dict | None = None, *, strict: bool | None = None,
                 limits: Limits | None = None) -> DecisionResult:
        """Evaluate a decision (and, first, the decisions it requires) against case data."""
        if decision_id not in self._decisions:
            raise DecisionEvaluationError(decision_id, decision_id, f"no decision with id {decision_id!r} is deployed")
        run = _Run(self, context or {}, self.strict if strict is None else strict)
        with _bounded(decision_id, limits or self.limits):
            return run.decision(self._decisions[decision_id], ())

    def evaluate_decision_service(self, service_id: str, inputs: dict | None = None, *, strict: bool | None = None,
                                  limits: Limits | None = None) -> DecisionResult:
        """Evaluate a decision service: its input decisions and input data come from ``inputs`` by name; the
        value is the output decision's value, or a context of them by name when there are several, and
        ``required`` holds the output decisions' own results (with their explanations)."""
        try:
            ds = self.service(service_id)
        except KeyError as e:
            raise DecisionEvaluationError(service_id, service_id, str(e.args[0])) from None
        run, outputs = _Run(self, {}, self.strict if strict is None else strict), []
        with _bounded(service_id, limits or self.limits):
            value = run.service(self.model_of(service_id), ds, inputs or {}, outputs)
        return DecisionResult(ds.id, ds.name, {}, to_python(value), required=outputs, value=value)


class _bounded:
    """Run under the evaluation limits; a limit reached is the decision's evaluation error."""

    def __init__(self, element: str, limits: Limits | None):
        self.element, self.cm = element, evaluation(limits or Limits())

    def __enter__(self):
        self.cm.__enter__()

    def __exit__(self, kind, exc, tb):
        self.cm.__exit__(kind, exc, tb)
        if isinstance(exc, FeelEvaluationError):
            raise DecisionEvaluationError(self.element, self.element, str(exc)) from exc
        if isinstance(exc, RecursionError):
            raise DecisionEvaluationError(self.element, self.element, "the evaluation recursed too deeply") from exc
        return False


class _Run:
    """One evaluation: the case data, the mode, and the results so far (each decision runs once)."""

    def __init__(self, registry: DecisionRegistry, context: dict, strict: bool, memo: dict | None = None):
        self.registry, self.context, self.strict = registry, context, strict
        self.memo: dict = memo if memo is not None else {}
        self.functions: dict[str, dict] = {}

    # ------------------------------------------------------------------ decisions

    def decision(self, d: Decision, stack: tuple) -> DecisionResult:
        key = (d.namespace, d.id)
        if key in self.memo:
            return self.memo[key]
        if d.id in stack:
            raise DecisionEvaluationError(d.id, d.id, "decisions require each other in a cycle: "
                                          + " -> ".join(stack + (d.id,)))
        model = self.registry.model_of(d.id, d.namespace) or self.registry.model_of(d.id)
        data, required = self.scope_data(model), []
        for ns, rid in d.required_refs:
            rd, rmodel = self.find_decision(ns, rid)
            if rd is None:
                raise DecisionEvaluationError(d.id, rid, f"decision {d.label!r} requires decision {rid!r}, "
                                              f"which is not deployed")
            r = self.decision(rd, stack + (d.id,))
            required.append(r)
            self.bind_required(data, model, rmodel, rd, r.value)
        result = self.run_logic(d, model, Scope(data))
        result.required = required
        self.memo[key] = result
        return result

    def find_decision(self, namespace, did):
        m = self.registry.model_of(did, namespace) or self.registry.model_of(did)
        return (m.decisions.get(did), m) if m is not None else (None, None)

    def bind_required(self, data: dict, model, rmodel, rd: Decision, value) -> None:
        """A required decision's value by its name and id, its outputs by their names (as Camunda does), or,
        from an imported model, inside the context named by the import."""
        import_name = next((n for n, ns in (model.imports if model else {}).items()
                            if rmodel is not None and ns == rmodel.namespace and rmodel is not model), None)
        if import_name:
            data[import_name] = {**data.get(import_name, {}), rd.name: value}
            return
        # outputs first, so a decision named like another's output still wins; both shadow case data
        for out in rd.outputs:
            data[out.name] = value.get(out.name) if isinstance(value, dict) and not rd.single_output else value
        data[rd.id] = value
        data[rd.name] = value

    def run_logic(self, d: Decision, model, scope: Scope) -> DecisionResult:
        state().types = self.types_for(model)  # for `instance of` the model's item definitions
        if d.logic is None:
            if d.literal is not None and d.literal.error:
                raise DecisionEvaluationError(d.id, d.id, f"decision {d.label!r}: its literal expression is not "
                                              f"valid FEEL: {d.literal.error}")
            return _result(d, None)
        if d.table is not None:
            outcome = evaluate_table(d.table, scope, self.strict)
            return _result(d, self.typed(d, model, outcome.value, table=True), outcome)
        return _result(d, self.typed(d, model, d.logic(scope, self.strict)))

    def typed(self, d: Decision, model, value, table: bool = False):
        """The value as the decision's declared type: coerced (standard) or checked (strict, literal logic)."""
        if not self.strict:
            return coerce(value, d.type_ref, self.types_for(model)) if d.type_ref else value
        if table or d.kind != "literalExpression":
            return value
        type_word = _strict_type(d, model)
        try:
            return strict_coerce(value, type_word)
        except TypeMismatch:
            raise DecisionEvaluationError(d.id, d.id, f"decision {d.label!r} expects {TYPE_WORDS[type_word]}, "
                                          f"its expression gave {show(value)}") from None

    # ------------------------------------------------------------------ scope

    def scope_data(self, model: DecisionModel | None) -> dict:
        """Case data (typed as the model's input data declare, in standard mode), knowledge models and
        decision services as functions, imported models' functions under their import names."""
        data = dict(self.context)
        if model is None:
            return data
        self.imported_inputs(model, data)
        if not self.strict:
            for inp in model.inputs.values():
                if inp.type_ref and inp.name in data:
                    data[inp.name] = coerce(to_feel(data[inp.name]), inp.type_ref, self.types_for(model))
        data.update(self.model_functions(model))
        for name, ns in model.imports.items():
            imported = next((m for m in self.registry.models.values() if m.namespace == ns), None)
            if imported is not None:
                ctx = dict(self.model_functions(imported))
                ctx.update({i.name: data[f"{name}.{i.name}"] for i in imported.inputs.values()
                            if f"{name}.{i.name}" in data})
                data[name] = {**ctx, **(data.get(name) or {})} if isinstance(data.get(name), dict) else ctx
        return data

    def imported_inputs(self, model: DecisionModel, data: dict) -> None:
        """An imported model's input data, given by the caller inside the context named by the import
        (``{"Model B": {"Person name": ...}}``) or as ``"Model B.Person name"``."""
        aliases = {alias for m in self.registry.models.values() for alias, ns in m.imports.items()
                   if ns == model.namespace and m is not model}
        for alias in aliases:
            given = self.context.get(alias)
            for inp in model.inputs.values():
                if inp.name in data:
                    continue
                if isinstance(given, dict) and inp.name in given:
                    data[inp.name] = given[inp.name]
                elif f"{alias}.{inp.name}" in self.context:
                    data[inp.name] = self.context[f"{alias}.{inp.name}"]

    def types_for(self, model: DecisionModel | None) -> dict:
        """The model's item definitions, and its imports' by their qualified names (``myimport.tPerson``)."""
        if model is None:
            return {}
        types = dict(model.types)
        for name, ns in model.imports.items():
            imported = next((m for m in self.registry.models.values() if m.namespace == ns), None)
            if imported is not None:
                types.update({f"{name}.{t}": item for t, item in imported.types.items()})
        return types

    def model_functions(self, model: DecisionModel) -> dict:
        if model.filename not in self.functions:
            fns: dict = {}
            self.functions[model.filename] = fns
            for bkm in model.bkms.values():
                fns[bkm.name] = self.bkm_function(model, bkm)
            for ds in model.services.values():
                fns[ds.name] = self.service_function(model, ds)
        return self.functions[model.filename]

    def bkm_function(self, model: DecisionModel, bkm) -> Function:
        def impl(args, named):
            st = state()
            caller_types, st.types = st.types, self.types_for(model)  # the knowledge model's own types
            try:
                fn = bkm.logic(Scope(self.scope_data(model)), self.strict)
                return fn.call(args, named) if isinstance(fn, Function) else None
            finally:
                st.types = caller_types
        return Function(bkm.name, None, impl)

    # ------------------------------------------------------------------ decision services

    def service_function(self, model: DecisionModel, ds: DecisionService) -> Function:
        params = self.service_params(ds)

        def impl(args, named):
            if named is None:
                if len(args) != len(params):
                    return None  # a decision service needs every one of its inputs
                named = dict(zip(params, args))
            if not set(named) <= set(params):
                return None
            return self.service(model, ds, named)
        return Function(ds.name, params, impl)

    def service_params(self, ds: DecisionService) -> list[str]:
        names = [_input_name(self.registry, ns, iid) for ns, iid in ds.input_data]
        for ns, did in ds.input_decisions:
            d, _ = self.find_decision(ns, did)
            names.append(d.name if d else did)
        return names

    def service(self, model: DecisionModel, ds: DecisionService, inputs: dict, results: list | None = None):
        """The service's outputs, its input decisions taken from ``inputs`` rather than evaluated; the output
        decisions' results are appended to ``results`` when given."""
        memo = {}
        for ns, did in ds.input_decisions:
            d, dmodel = self.find_decision(ns, did)
            if d is not None:
                given = to_feel(inputs.get(d.name))
                value = self.typed(d, dmodel, given) if not self.strict else given
                if given is not None and value is None:
                    return None  # an input decision's value of the wrong type
                memo[(d.namespace, d.id)] = _result(d, value)
        inner = _Run(self.registry, {k: v for k, v in inputs.items()}, self.strict, memo)
        values = {}
        for ns, did in ds.output_decisions:
            d, _ = self.find_decision(ns, did)
            if d is None:
                raise DecisionEvaluationError(ds.id, did, f"decision service {ds.name!r} outputs decision "
                                              f"{did!r}, which is not deployed")
            result = inner.decision(d, ())
            values[d.name] = result.value
            if results is not None:
                results.append(result)
        value = next(iter(values.values())) if len(values) == 1 else values
        return coerce(value, ds.type_ref, model.types) if ds.type_ref and not self.strict else value


def _input_name(registry: DecisionRegistry, namespace, iid: str) -> str:
    for m in registry.models.values():
        if (namespace is None or m.namespace == namespace) and iid in m.inputs:
            return m.inputs[iid].name
    return iid


def _strict_type(d: Decision, model) -> str | None:
    from .tables import LoadContext
    if not d.type_ref:
        return None
    aliases = {name: (item.base if isinstance(item.base, str) else None)
               for name, item in (model.types if model else {}).items()
               if not item.is_collection and not item.components}
    return LoadContext("", set(), {}, [], aliases).strict_type(d.type_ref)
