"""A signal more cases wait for than a request reaches: the first in the sender's request, the rest a batch at a time
by the timer service (``service.broadcasts``), each case once, each batch committed with how far it has got.

``SIGNAL_BATCH`` and a sweep's batch are made 2 here; in the service the request reaches 100, and a sweep as many
as it reaches in a quarter of a second (a signal 10,000 cases waited for took the sender's request past the
worker's timeout, and, rolled back, reached none)."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from conftest import FIXTURES, everything, in_council
from constructs_support import deploy
from service import broadcasts, scheduler
from service import cases as case_service
from service.engine import clock
from service.errors import Conflict
from service.models import AuditEvent, Case, SignalBroadcast, db


@pytest.fixture
def small_batches(monkeypatch):
    """Two cases in the request, then two a sweep."""
    monkeypatch.setattr(case_service, "SIGNAL_BATCH", 2)
    monkeypatch.setattr(broadcasts, "CHUNK", 2)
    monkeypatch.setattr(broadcasts, "SWEEP_SECONDS", 0)


def _waiting_cases(api, count: int, start: int = 0) -> list[int]:
    """``count`` cases of ``signal_catch`` waiting for the signal ``school_closure``."""
    ids = []
    for n in range(start, start + count):
        case = api.post("/cases", json={"process": "signal_catch", "reference": f"FAM-{n}", "data": {}}).json
        done = api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}})
        assert done.status_code == 200, done.json
        ids.append(case["id"])
    return ids


def _deploy(api) -> None:
    assert deploy(api, ("signal_catch.bpmn", (FIXTURES / "constructs" / "signal_catch.bpmn").read_bytes())
                  ).status_code == 201


def _open(api, case_id: int) -> list[str]:
    return [t["name"] for t in api.get(f"/cases/{case_id}", as_="admin").json["tasks"]]


def _caught(app, case_id: int) -> int:
    """How many times the case's history says it caught a signal."""
    with app.app_context(), everything():
        return len(db.session.scalars(select(AuditEvent.id).where(AuditEvent.case_id == case_id,
                                                                   AuditEvent.event == "signal_received")).all())


def test_the_rest_of_a_signals_cases_catch_it_a_batch_at_a_time_each_once(app, api, small_batches):
    _deploy(api)
    waiting = _waiting_cases(api, 5)
    sent = api.post("/signals", json={"name": "school_closure", "data": {"closed_until": "2027-01-04"}}, as_="admin")
    assert sent.status_code == 200, sent.json
    assert sent.json["reached"] == waiting[:2] and sent.json["broadcast"] is not None
    broadcast = sent.json["broadcast"]
    assert [_open(api, case_id) for case_id in waiting[2:]] == [[], [], []]  # not yet
    later = _waiting_cases(api, 1, start=5)[0]  # came to wait after the signal was sent: it does not catch it
    on_its_way = api.get(f"/signals/{broadcast}", as_="admin").json
    assert (on_its_way["name"], on_its_way["reached"], on_its_way["finished_at"]) == ("school_closure", 2, None)
    assert scheduler.next_due(app) <= clock.now()  # due at once: the timer service comes for it
    assert api.get(f"/signals/{broadcast}", as_="worker").status_code == 403

    assert broadcasts.deliver_due(app) == 2
    assert api.get(f"/signals/{broadcast}", as_="admin").json["finished_at"] is None
    assert broadcasts.deliver_due(app) == 1
    done = api.get(f"/signals/{broadcast}", as_="admin").json
    assert done["reached"] == 5 and done["finished_at"] is not None
    assert broadcasts.deliver_due(app) == 0
    assert all(_open(api, case_id) == ["Task_ArrangeCover"] for case_id in waiting)
    assert [_caught(app, case_id) for case_id in waiting] == [1, 1, 1, 1, 1]
    assert _open(api, later) == [] and _caught(app, later) == 0
    with app.app_context(), everything():
        kept = db.session.get(SignalBroadcast, broadcast)
        assert kept.payload == {}  # its data goes once it is done
    assert scheduler.next_due(app) is None
    assert api.get("/signals/999999", as_="admin").status_code == 404


def test_a_signal_few_cases_wait_for_reaches_them_all_in_the_request(api, small_batches):
    _deploy(api)
    waiting = _waiting_cases(api, 1)
    sent = api.post("/signals", json={"name": "school_closure"}, as_="admin")
    assert sent.json == {"reached": waiting, "started": [], "broadcast": None}, sent.json


def test_a_case_that_cannot_catch_the_signal_is_noted_and_the_others_still_catch_it(app, api, small_batches,
                                                                                      monkeypatch):
    _deploy(api)
    waiting = _waiting_cases(api, 4)
    broadcast = api.post("/signals", json={"name": "school_closure"}, as_="admin").json["broadcast"]
    deliver = case_service._deliver

    def refuse_the_third(session, case, *args, **kwargs):
        if case.id == waiting[2]:
            raise Conflict("this case's rows were refused")
        return deliver(session, case, *args, **kwargs)

    monkeypatch.setattr(case_service, "_deliver", refuse_the_third)
    assert broadcasts.deliver_due(app) == 1
    assert _open(api, waiting[3]) == ["Task_ArrangeCover"] and _open(api, waiting[2]) == []
    history = api.get(f"/cases/{waiting[2]}/history", as_="admin").json
    [noted] = [e for e in history if e["event"] == "signal_undelivered"]
    assert noted["detail"] == {"name": "school_closure", "reason": "this case's rows were refused"}
    assert api.get(f"/signals/{broadcast}", as_="admin").json["reached"] == 3


def test_the_timer_service_delivers_the_rest_by_itself(app, api, small_batches):
    """No sweep is due for an hour: the commit that kept the broadcast wakes the service, and a broadcast on its
    way stays due until it is done."""
    app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600
    _deploy(api)
    waiting = _waiting_cases(api, 7)
    service = scheduler.TimerService(app)
    service.start()
    try:
        time.sleep(0.5)  # the start-up sweep has run
        broadcast = api.post("/signals", json={"name": "school_closure"}, as_="admin").json["broadcast"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not api.get(f"/signals/{broadcast}", as_="admin").json["finished_at"]:
            time.sleep(0.1)
    finally:
        service.shutdown()
    assert api.get(f"/signals/{broadcast}", as_="admin").json["reached"] == 7
    assert [_caught(app, case_id) for case_id in waiting] == [1] * 7


def test_a_broadcast_another_process_holds_is_left_to_it(app, api, small_batches, database_url):
    """Two timer services never deliver the same batch: the broadcast's row is claimed ``FOR UPDATE SKIP
    LOCKED``, and one held elsewhere is passed over until it is let go."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one service process")
    _deploy(api)
    _waiting_cases(api, 3)
    broadcast = api.post("/signals", json={"name": "school_closure"}, as_="admin").json["broadcast"]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with app.app_context():
            with db.engine.connect() as connection:
                connection.execute(text("SELECT set_config('app.all_councils', 'on', true)"))
                connection.execute(text("SELECT id FROM signal_broadcasts WHERE id = :id FOR UPDATE"),
                                   {"id": broadcast})
                held.set()
                release.wait(20)
                connection.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert broadcasts.deliver_due(app) == 0
    finally:
        release.set()
        holder.join()
    assert broadcasts.deliver_due(app) == 1


def test_a_case_moved_on_elsewhere_catches_the_signal_from_what_the_database_holds_now(app, api, database_url):
    """Each case a signal reaches is read inside its lock with what the database holds then: a copy the session
    read before another transaction moved the case on would start the step from the old state (and the case's
    write, at the old ``lock_version``, would be refused)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: no case moves on meanwhile")
    _deploy(api)
    [case_id] = _waiting_cases(api, 1)
    with app.app_context():
        council = in_council(db.session)
        held = db.session.get(Case, case_id)  # read before the case moved on
        with db.engine.begin() as elsewhere:
            elsewhere.execute(text("SELECT set_config('app.all_councils', 'on', true)"))
            elsewhere.execute(text("UPDATE cases SET lock_version = lock_version + 1 WHERE id = :id"), {"id": case_id})
        [read] = case_service.signal_candidates(db.session, "school_closure", after=0, up_to=case_id,
                                                thrower_id=None, size=1)
        assert read is held and case_service.catch_signal(db.session, read, "school_closure", {},
                                                          case_service.Actor("admin", (), None, council.id))
        db.session.commit()
    assert _open(api, case_id) == ["Task_ArrangeCover"]
