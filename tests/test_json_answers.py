"""The service's JSON answers are Flask's, written by orjson (service.json_answers)."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask, jsonify
from markupsafe import Markup

from conftest import FIXTURES
from service.json_answers import JSONAnswers


@dataclass
class _Pair:
    left: int
    right: str


VALUES = {
    "when": datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc), "day": date(2026, 12, 1),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("2.50"), "pair": _Pair(1, "b"),
    "html": Markup("<b>safe</b>"), "numbers": {2: "two", 1: "one"}, "name": "Siân Ó Dálaigh",
    "nested": [{"z": 1, "a": 2}], "big": 2 ** 70,
}


def _answers(provider: type | None) -> tuple[bytes, bytes]:
    flask_app = Flask("answers")
    if provider is not None:
        flask_app.json = provider(flask_app)
    with flask_app.app_context():
        small = {key: value for key, value in VALUES.items() if key != "big"}
        return jsonify(small).get_data(), jsonify(VALUES).get_data()


def test_an_answer_reads_as_flasks_own():
    """The same values, datetimes as Flask writes them (an HTTP date), keys sorted; an integer orjson will not
    write (beyond 64 bits) as Flask writes it."""
    ours, flasks = _answers(JSONAnswers), _answers(None)
    for mine, theirs in zip(ours, flasks):
        assert json.loads(mine) == json.loads(theirs)
    written = json.loads(ours[0])
    assert written["when"] == "Tue, 01 Dec 2026 09:30:00 GMT"
    assert list(written) == sorted(written) and list(written["nested"][0]) == ["a", "z"]
    assert "Siân".encode() in ours[0], "written by orjson: UTF-8, not escapes"
    assert ours[1] == flasks[1], "beyond 64 bits: Flask's own writing"


def test_what_flask_refuses_is_refused():
    flask_app = Flask("answers")
    flask_app.json = JSONAnswers(flask_app)
    with flask_app.app_context(), pytest.raises(TypeError):
        jsonify({"roles": {"social_worker"}})


def test_pages_and_other_callers_get_flasks_writing():
    """Only the compact answers are orjson's: ``tojson`` and a plain ``dumps`` write as Flask does."""
    flask_app = Flask("answers")
    flask_app.json = JSONAnswers(flask_app)
    assert flask_app.json.dumps({"b": 1, "a": "é"}) == json.dumps({"b": 1, "a": "é"}, sort_keys=True)
    with flask_app.app_context():
        rendered = flask_app.jinja_env.from_string("{{ value|tojson }}").render(value={"b": "</script>", "a": 1})
    assert rendered == '{"a": 1, "b": "\\u003c/script\\u003e"}'


def test_the_service_answers_with_it(api):
    api.deploy(FIXTURES / "pathways")
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-Siân", "data": {"needs": 3}})
    assert started.status_code == 201, started.json
    assert "FAM-Siân".encode() in api.get(f"/cases/{started.json['id']}").get_data()
