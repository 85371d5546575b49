"""POST /decisions/<id>/evaluate: try a decision table without a case."""
from __future__ import annotations

from flask_smorest import Blueprint

from service import deployments as deployment_service
from service.engine import decisions as dmn
from service.errors import InvalidData, NotFound
from service.models import db

from .access import authenticate, require_role
from .schemas import EvaluateSchema

blp = Blueprint("decisions", __name__, description="Decision tables")
blp.before_request(authenticate)


@blp.route("/decisions/<string:decision_id>/evaluate", methods=["POST"])
@blp.arguments(EvaluateSchema)
def evaluate(body, decision_id: str):
    """Evaluate a deployed decision with ``inputs``: its outputs (shaped by the hit policy) and matched rules.

    For analysts (role analyst), who try a table before it routes a child.
    """
    require_role("analyst")
    bundle = deployment_service.latest_bundle(db.session)
    if bundle is None or decision_id not in bundle.decisions:
        raise NotFound(f"there is no decision '{decision_id}'")
    try:
        result = bundle.decisions.evaluate(decision_id, body["inputs"])
    except dmn.DecisionEvaluationError as error:
        raise InvalidData(error.message, {"inputs": error.message}) from None
    explained = result.to_json()
    return {"outputs": explained["outputs"], "matched_rules": explained["matched_rules"],
            "inputs": explained.get("inputs")}
