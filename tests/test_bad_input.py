"""Bad input gets a 4xx naming what is wrong, never a 500, on SQLite and on PostgreSQL (issue 11, item 7)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import FIXTURES, in_council
from service.errors import InvalidData
from service.models import Case, ProcessVersion, db

PATHWAY = FIXTURES / "pathways"
START = {"process": "test_review", "reference": "R-1", "data": {"needs": 3, "family_name": "Smith"}}


@pytest.fixture
def case(api):
    assert api.deploy(PATHWAY).status_code == 201
    response = api.post("/cases", json=START)
    assert response.status_code == 201, response.json
    return response.json


@pytest.mark.parametrize("number", [2**31, 2**63, 2**64, 10**30])
def test_ids_out_of_range_are_not_found(api, case, number):
    for path in (f"/cases/{number}", f"/cases/{number}/history"):
        assert api.get(path).status_code == 404, path
    for path in (f"/cases/{number}/messages", f"/cases/{number}/retry"):
        assert api.post(path, json={"name": "immediate_risk", "data": {}}).status_code == 404, path
    response = api.get(f"/tasks?case={number}")
    assert response.status_code == 422 and "case" in str(response.json["errors"])


def test_nul_in_any_string_is_refused_naming_the_field(api, case):
    response = api.post("/cases", json={**START, "reference": "R\u00001"})
    assert response.status_code == 422 and "body.reference" in response.json["errors"]
    response = api.post("/cases", json={**START, "data": {"needs": 3, "family_name": "Sm\u0000ith"}})
    assert response.status_code == 422 and "body.data.family_name" in response.json["errors"]
    response = api.post(f"/tasks/{case['tasks'][0]['id']}\u0000/complete", json={"data": {}})
    assert response.status_code == 422 and "task_id" in response.json["errors"]
    assert api.get("/tasks?role=a%00b").status_code == 422


def test_deeply_nested_json_is_refused_clearly(api, case):
    deep = "[" * 100_000 + "]" * 100_000
    response = api.post("/cases", data=f'{{"process": "test_review", "reference": "R", "data": {{"x": {deep}}}}}',
                        content_type="application/json")
    assert response.status_code == 400 and "nested" in response.json["message"]
    shallow = {"x": [[[[1]]]]}
    assert api.post("/cases", json={**START, "data": {"needs": 3, **shallow}}).status_code == 201


def test_values_longer_than_their_column_are_refused(api, case):
    response = api.post("/cases", json={**START, "reference": "R" * 121})
    assert response.status_code == 422 and "reference" in str(response.json["errors"])
    response = api.post(f"/tasks/{case['tasks'][0]['id']}/claim", json={"assignee": "a" * 81}, as_="manager")
    assert response.status_code == 422 and "assignee" in str(response.json["errors"])


def test_the_last_wall_names_the_column_on_both_databases(app, case):
    """Whatever reaches a flush (a value an expression computed, say) too long for its column is a 422."""
    with app.app_context():
        in_council(db.session)
        version = db.session.scalars(select(ProcessVersion)).first()
        db.session.add(Case(process=version, reference="R", status="active", state="", state_format="x",
                            outcome="o" * 98))
        with pytest.raises(InvalidData) as refused:
            db.session.flush()
        assert "cases.outcome" in refused.value.errors
        db.session.rollback()


def test_405_says_which_methods_are_allowed(api):
    response = api.client.delete("/api/v1/cases")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"POST"}


def test_api_answers_are_never_stored_by_a_browser_or_proxy(api, case):
    assert api.get(f"/cases/{case['id']}").headers["Cache-Control"] == "no-store"
    assert api.get("/cases/1", as_=None).headers["Cache-Control"] == "no-store"


def test_openapi_error_schemas_match_what_is_sent(api):
    spec = api.get("/openapi.json").json
    schemas = spec["components"]["schemas"]
    assert {"message", "errors", "waiting"} <= set(schemas["Error"]["properties"])
    messages = spec["paths"]["/api/v1/cases/{case_id}/messages"]["post"]["responses"]
    assert messages["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/Waiting")
    refused = spec["paths"]["/api/v1/deployments"]["post"]["responses"]["400"]
    assert refused["content"]["application/json"]["schema"]["$ref"].endswith("/DeploymentRefused")
    assert schemas["DeploymentRefused"]["properties"]["errors"]["type"] == "array"
