"""Property-based test of the API: whatever a caller sends, the answer is never a 5xx.

Schemathesis generates requests for every operation of /api/v1/openapi.json (valid and invalid bodies,
query strings and path parameters), on SQLite and on PostgreSQL (under row-level security), with a
pathway deployed, a case started and valid tokens, so that requests get past authentication into the
handlers. A request whose path names a case, task, pathway or decision is also sent again naming the real
one, so the generated bodies reach the code that acts on them. Bounded: a fixed number of examples per
operation (about a minute per database).
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from conftest import FIXTURES, Api, make_app, save_user
from service import auth
from service.models import db

EXAMPLES = 15
OPERATOR_TOKEN = "token-operator"
#: No shrinking: the first failing request is reported as sent (shrinking a 5xx can take minutes).
PHASES = (Phase.explicit, Phase.generate)


@pytest.fixture
def deployed(database_url):
    """The service with the fixture pathway deployed, a case with an open task, and an admin's token."""
    app = make_app(database_url)
    with app.app_context():
        save_user(db.session, "admin", ["admin"], token="token-admin")
        auth.save_user(db.session, "operator", [], token=OPERATOR_TOKEN, operator=True)
        db.session.commit()
    api = Api(app, {"admin": "token-admin"})
    assert api.deploy(FIXTURES / "pathways", as_="admin").status_code == 201
    case = api.post("/cases", json={"process": "test_review", "reference": "R-1",
                                    "data": {"needs": 3, "family_name": "Smith"}}, as_="admin").json
    real = {"case_id": case["id"], "task_id": case["tasks"][0]["id"], "key": "test_review",
            "decision_id": "test_level"}
    yield app, real
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_no_request_gets_a_5xx(deployed):
    app, real = deployed
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        _explore(operation, real, failures)
    assert not failures, "\n".join(failures)


#: Values the review found 500s with: ids past PostgreSQL's integer and SQLite's 64 bits, NUL, over-long text.
HOSTILE = [2**31, 2**63, 2**64, -1, 0, "a\x00b", "x" * 300, "\u00e9" * 130, "", None, [], {"a": {"b": [1]}}]


def _explore(operation, real: dict, failures: list[str]) -> None:
    """Send generated requests (valid and invalid) to one operation; note the first 5xx."""
    cases = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=PHASES,
              suppress_health_check=list(HealthCheck))
    @given(case=cases, hostile=st.sampled_from(HOSTILE))
    def send(case, hostile) -> None:
        token = OPERATOR_TOKEN if case.path.startswith("/api/v1/operator") else "token-admin"
        headers = {"Authorization": f"Bearer {token}"}
        _assert_no_5xx(case, case.call(headers=headers))
        if case.path_parameters and set(case.path_parameters) <= set(real):
            case.path_parameters = {name: real[name] for name in case.path_parameters}
            _assert_no_5xx(case, case.call(headers=headers))
        if isinstance(case.body, dict):
            case.body = {**case.body, **{k: hostile for k, v in case.body.items() if isinstance(v, str)}}
            case.body.update({k: v for k, v in KNOWN.items() if k in case.body and hostile is None})
            _assert_no_5xx(case, case.call(headers=headers))
        if case.path_parameters and not isinstance(hostile, (list, dict)) and hostile is not None:
            case.path_parameters = {name: hostile for name in case.path_parameters}
            _assert_no_5xx(case, case.call(headers=headers))

    try:
        send()
    except AssertionError as error:
        failures.append(str(error).splitlines()[0])


#: Names the deployed pathway knows, so that generated bodies reach the code past the look-ups.
KNOWN = {"process": "test_review", "from_council": "test"}


def _assert_no_5xx(case, response) -> None:
    assert response.status_code < 500, (f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                                        f"{response.status_code} {response.text[:300]}")
