"""What each case waits for, kept by the database: one row of ``case_waits`` per message and signal name in a
case's ``waiting_for`` and ``waiting_signals`` (migration ``d4f7b2e9a6c1``'s triggers), however the case is
written; a signal or correlated message finds its cases by that table's index, not by reading every case of the
council (on PostgreSQL under row-level security, where a ``LIKE`` on the lists could use no index)."""
from __future__ import annotations

import json

from sqlalchemy import event, text

from conftest import FIXTURES
from service.models import db

SIGNALS = ("signal_catch", "signal_throw", "signal_start")


def _deploy_signals(api, tmp_path) -> None:
    folder = tmp_path / "signals"
    folder.mkdir()
    for name in SIGNALS:
        (folder / f"{name}.bpmn").write_bytes((FIXTURES / "constructs" / f"{name}.bpmn").read_bytes())
    assert api.deploy(folder).status_code == 201


def _all_councils(connection) -> None:
    if connection.dialect.name == "postgresql":  # row-level security: this test reads every council's rows
        connection.execute(text("SELECT set_config('app.all_councils', 'on', true)"))


def _waits_and_lists(app, case_id: int) -> tuple[set, set]:
    """The case's rows of ``case_waits`` (kind, name, version), and what its lists and version say they should be."""
    with app.app_context(), db.engine.begin() as connection:
        _all_councils(connection)
        rows = set(connection.execute(text("SELECT kind, name, process_version_id FROM case_waits WHERE case_id = :c"),
                                      {"c": case_id}))
        messages, signals, version = connection.execute(text(
            "SELECT waiting_for, waiting_signals, process_version_id FROM cases WHERE id = :c"), {"c": case_id}).one()
    def load(value) -> list:  # a list's names; anything else names none
        value = json.loads(value) if isinstance(value, str) else value
        return value if isinstance(value, list) else []

    return rows, {("message", n, version) for n in load(messages)} | {("signal", n, version) for n in load(signals)}


def test_the_database_keeps_each_cases_waits_equal_to_its_lists(app, api, tmp_path):
    _deploy_signals(api, tmp_path)
    case = api.post("/cases", json={"process": "signal_catch", "reference": "FAM-1", "data": {}}).json
    rows, lists = _waits_and_lists(app, case["id"])
    assert rows == lists  # a new case's (its immediate-risk message, if it waits for one)
    done = api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}})
    assert done.status_code == 200, done.json
    rows, lists = _waits_and_lists(app, case["id"])
    assert ("signal", "school_closure") in {row[:2] for row in rows} and rows == lists  # a step changed them
    assert api.deploy(FIXTURES / "pathways").status_code == 201
    other = api.post("/cases", json={"process": "test_review", "reference": "FAM-2", "data": {"needs": 3}}).json
    with app.app_context(), db.engine.begin() as connection:  # written by anything else: a name once, not a list
        _all_councils(connection)
        connection.execute(text("UPDATE cases SET waiting_for = :m, waiting_signals = :s WHERE id = :c"),
                           {"m": json.dumps(["a", "a", "b"]), "s": json.dumps({"not": "a list"}), "c": case["id"]})
        connection.execute(text("UPDATE cases SET process_version_id = (SELECT process_version_id FROM cases "
                                "WHERE id = :o) WHERE id = :c"), {"o": other["id"], "c": case["id"]})
    rows, lists = _waits_and_lists(app, case["id"])
    assert {row[:2] for row in rows} == {("message", "a"), ("message", "b")} and rows == lists  # and moved version
    answer = api.post(f"/cases/{case['id']}/cancel", json={"reason": "Family moved away"}, as_="admin")
    assert answer.status_code == 200, answer.json
    rows, lists = _waits_and_lists(app, case["id"])
    assert rows == lists and ("message", "a") not in {row[:2] for row in rows}


def test_a_signal_finds_its_cases_by_the_index_of_their_waits(app, api, tmp_path, database_url):
    """The statement that finds the cases waiting for a signal reads ``case_waits`` by its index and no case but
    those. On PostgreSQL, as the service's role (row-level security on), with sequential scans off: an index the
    wall lets it use, no ``LIKE`` walking one; on SQLite, its plan."""
    _deploy_signals(api, tmp_path)
    for reference in ("FAM-1", "FAM-2"):
        case = api.post("/cases", json={"process": "signal_catch", "reference": reference, "data": {}}).json
        assert api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}}).status_code == 200
    with app.app_context():
        engine = db.engine
    sent = []
    seen = lambda conn, cursor, statement, parameters, *args: sent.append((statement, parameters))  # noqa: E731
    event.listen(engine, "before_cursor_execute", seen)
    try:
        answer = api.post("/signals", json={"name": "school_closure", "reference": "SCHOOL-1"}, as_="admin")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert answer.status_code == 200 and len(answer.json["reached"]) == 2, answer.json
    [(statement, parameters)] = [(s, p) for s, p in sent if "FROM case_waits" in s]
    with app.app_context():
        connection = db.session.connection()
        if database_url.startswith("postgresql"):
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert "ix_case_waits_council_kind_name" in plan and "Seq Scan on cases" not in plan, plan
            assert "~~" not in plan, plan
        else:
            plan = "\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                          parameters))
            assert "USING COVERING INDEX ix_case_waits_council_kind_name" in plan and "SCAN cases" not in plan, plan
        db.session.remove()
