"""Trying decisions without a case: a decision table, or a decision service, with typed values.

Values in and out use the typed JSON form of ``service.engine.decisions.typed_json``: plain JSON for text,
booleans, numbers, lists and contexts, and ``{"@type": "date", "value": "2026-12-21"}`` (likewise ``time``,
``date and time``, ``days and time duration``, ``years and months duration``, ``range``) for what JSON cannot
say unambiguously. For analysts (role analyst), who try a table before it routes a child.
"""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import fields

from service import deployments as deployment_service
from service.engine import decisions as dmn
from service.errors import InvalidData, NotFound
from service.models import db

from .access import authenticate, require_role
from .schemas import StrictSchema

blp = Blueprint("decisions", __name__, description="Decision tables and decision services (role analyst)")
blp.before_request(authenticate)


class EvaluateSchema(StrictSchema):
    inputs = fields.Dict(load_default=dict, metadata={"description": "input values, in typed JSON"})
    explain = fields.Boolean(load_default=False, metadata={"description": "add every required decision's result"})


def _registry():
    bundle = deployment_service.latest_bundle(db.session)
    return bundle.decisions if bundle is not None else None


def _inputs(body) -> dict[str, Any]:
    try:
        return dmn.from_json(body["inputs"])
    except dmn.TypedJsonError as error:
        raise InvalidData(f"an input is not what its type says: {error}", {"inputs": str(error)}) from None


@blp.route("/decisions/<string:decision_id>/evaluate", methods=["POST"])
@blp.arguments(EvaluateSchema())
def evaluate(body, decision_id: str):
    """Evaluate a deployed decision: its outputs (shaped by the hit policy), matched rules and, on request,
    every required decision's result."""
    registry = _registry()
    if registry is None or decision_id not in registry:  # before the role: the same 404 for every outsider
        raise NotFound(f"there is no decision '{decision_id}'")
    require_role("analyst")
    try:
        result = registry.evaluate(decision_id, _inputs(body))
    except dmn.DecisionEvaluationError as error:
        raise InvalidData(error.message, {"inputs": error.message}) from None
    return _answer(result, body["explain"])


@blp.route("/decision-services/<string:service_id>/evaluate", methods=["POST"])
@blp.arguments(EvaluateSchema())
def evaluate_service(body, service_id: str):
    """Evaluate a deployed decision service with its inputs (by input data or input decision name)."""
    registry = _registry()
    try:
        registry.service(service_id) if registry is not None else None
    except KeyError:
        registry = None
    if registry is None:
        raise NotFound(f"there is no decision service '{service_id}'")
    require_role("analyst")
    try:
        result = registry.evaluate_decision_service(service_id, _inputs(body))
    except dmn.DecisionEvaluationError as error:
        raise InvalidData(error.message, {"inputs": error.message}) from None
    return _answer(result, body["explain"])


def _answer(result, explain: bool) -> dict[str, Any]:
    answer = {"outputs": _typed(result), "matched_rules": [
        {"id": r.id, "index": r.index, "annotation": r.annotation} for r in result.matched_rules],
        "inputs": dmn.to_json(result.inputs)}
    if explain:
        answer["required"] = [{"decision": r.decision_id, "outputs": _typed(r)} for r in result.required]
    return answer


def _typed(result) -> Any:
    # The FEEL value keeps exact numbers and types; ``outputs`` is its Python form.
    return dmn.to_json(result.value if result.value is not None else result.outputs)
