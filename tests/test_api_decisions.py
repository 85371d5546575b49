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
    api.deploy(FIXTURES / "pathways")
    assert api.post("/decisions/test_level/evaluate", json={"inputs": {"needs": 1, "risk": False}}).status_code == 403


def test_typed_values_in_and_the_required_decisions_on_request(api):
    assert api.deploy(FIXTURES / "decision_service").status_code == 201
    body = {"inputs": {"birth date": {"@type": "date", "value": "2008-12-22"},
                       "on": {"@type": "date", "value": "2026-12-21"}}, "explain": True}
    answer = api.post("/decisions/Decision_Adult/evaluate", json=body, as_="analyst")
    assert answer.status_code == 200, answer.json
    assert answer.json["outputs"] is False
    assert answer.json["required"] == [{"decision": "Decision_Age", "outputs": 17}]
    wrong = api.post("/decisions/Decision_Adult/evaluate", as_="analyst",
                     json={"inputs": {"birth date": {"@type": "date", "value": "22/12/2008"}}})
    assert wrong.status_code == 422 and "date" in wrong.json["message"]


def test_a_decision_service_is_evaluated_through_the_api(api):
    assert api.deploy(FIXTURES / "decision_service").status_code == 201
    inputs = {"birth date": {"@type": "date", "value": "2008-12-21"}, "on": {"@type": "date", "value": "2026-12-21"}}
    answer = api.post("/decision-services/DecisionService_Adult/evaluate", json={"inputs": inputs}, as_="analyst")
    assert answer.status_code == 200, answer.json
    assert answer.json["outputs"] is True
    assert api.post("/decision-services/nothing/evaluate", json={"inputs": {}}, as_="analyst").status_code == 404
    assert api.post("/decision-services/DecisionService_Adult/evaluate", json={"inputs": inputs}).status_code == 403
