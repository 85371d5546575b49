"""POST /api/v1/decisions/<id>/evaluate: an analyst tries a table before it routes a child."""
from __future__ import annotations

from conftest import FIXTURES


def test_evaluate_returns_outputs_and_the_matching_rule(api):
    api.deploy(FIXTURES / "pathways")
    response = api.post("/decisions/test_level/evaluate", json={"inputs": {"needs": 1, "risk": False}}, as_="analyst")
    assert response.status_code == 200, response.json
    assert response.json["outputs"] == "additional"
    [rule] = response.json["matched_rules"]
    assert rule["id"] == "Rule_Additional" and rule["annotation"] == "One or two needs"


def test_no_matching_rule_and_wrong_types_are_422_naming_the_table(api):
    api.deploy(FIXTURES / "pathways")
    gap = api.post("/decisions/test_level/evaluate", json={"inputs": {"needs": 3, "risk": False}}, as_="analyst")
    assert gap.status_code == 422 and "Level of need" in gap.json["message"]
    wrong = api.post("/decisions/test_level/evaluate", json={"inputs": {"needs": "three", "risk": False}}, as_="analyst")
    assert wrong.status_code == 422 and "Number of needs" in wrong.json["message"]


def test_unknown_decision_is_404(api):
    assert api.post("/decisions/nothing/evaluate", json={"inputs": {}}, as_="analyst").status_code == 404
    # Trying tables is an analyst's work: a case worker may not run a decision outside a case.
    assert api.post("/decisions/test_level/evaluate", json={"inputs": {"needs": 1, "risk": False}}).status_code == 403
