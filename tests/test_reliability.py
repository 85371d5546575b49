"""One case, one user or one slow step never stops the others (issue 11, items 2, 3 and 5).

A case whose timers keep failing is quarantined after three sweeps and its council's admins are told,
while every other due timer still fires; an admin can cancel a case with the reason; two people claiming
one task at once get one 200 and one 409; only a holder of a pathway's roles starts its cases; a message
adds to what a case knows but never changes it.
"""
from __future__ import annotations

import gc
import threading
import weakref

import pytest

from conftest import FIXTURES, make_app, save_user
from service import cases, scheduler
from service.models import Case, db

PATHWAY = FIXTURES / "pathways"


def start(api, reference="FAM-1", as_="worker"):
    response = api.post("/cases", json={"process": "test_review", "reference": reference, "data": {"needs": 3}},
                        as_=as_)
    assert response.status_code == 201, response.json
    return response.json


def test_a_case_whose_timers_keep_failing_is_quarantined_and_the_others_still_fire(api, app, frozen_clock,
                                                                                    monkeypatch):
    api.deploy(PATHWAY)
    app.config["TIMER_QUICK_REMINDERS"] = False  # the engine's step fails here: the reminder must take it
    poisoned, healthy = start(api, "POISON"), start(api, "HEALTHY")
    frozen_clock.advance(days=2, minutes=1)
    real = cases.fire_timers

    def failing(session, case):
        if case.id == poisoned["id"]:
            raise RuntimeError("a broken case")
        return real(session, case)

    monkeypatch.setattr(cases, "fire_timers", failing)
    assert scheduler.fire_due(app) == 1  # the healthy case's reminder fired all the same
    for sweep in range(2):
        assert api.get(f"/cases/{poisoned['id']}").json["status"] == "active"
        scheduler.fire_due(app)
    quarantined = api.get(f"/cases/{poisoned['id']}", as_="admin").json
    assert quarantined["status"] == "error" and "failed 3 times" in quarantined["error"]["message"]
    listed = api.get("/cases?status=error", as_="admin").json
    assert [c["id"] for c in listed["cases"]] == [poisoned["id"]] and listed["total"] == 1
    admin_notes = api.get("/notifications", as_="admin").json
    assert [n["kind"] for n in admin_notes] == ["error"] and "POISON" in admin_notes[0]["subject"]
    assert api.get("/notifications", as_="worker").json[0]["subject"].endswith("(case HEALTHY)")
    # Quarantined, it is no longer swept; a successful firing elsewhere reset nothing of it.
    frozen_clock.advance(days=7)
    assert scheduler.fire_due(app) == 1  # the healthy case's escalation only


def test_a_timer_error_tells_the_admins(api, app, frozen_clock, monkeypatch):
    from service.engine import runtime

    api.deploy(PATHWAY)
    app.config["TIMER_QUICK_REMINDERS"] = False  # the engine's step fails here: the reminder must take it
    case = start(api)
    frozen_clock.advance(days=2, minutes=1)

    def broken(workflow, journal):
        raise runtime.EngineError("Event_RemindWorker", "a script after the timer failed")

    monkeypatch.setattr(runtime, "fire_timers", broken)
    assert scheduler.fire_due(app) == 0
    assert api.get(f"/cases/{case['id']}").json["status"] == "error"
    [note] = api.get("/notifications", as_="admin").json
    assert note["kind"] == "error" and "Event_RemindWorker" in note["body"]


def test_an_admin_cancels_a_case_with_the_reason(api, frozen_clock):
    api.deploy(PATHWAY)
    case = start(api)
    assert api.post(f"/cases/{case['id']}/cancel", json={"reason": "A duplicate of FAM-2"}).status_code == 403
    assert api.post(f"/cases/{case['id']}/cancel", json={"reason": " "}, as_="admin").status_code == 422
    cancelled = api.post(f"/cases/{case['id']}/cancel", json={"reason": "A duplicate of FAM-2"}, as_="admin")
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "cancelled" and cancelled.json["tasks"] == [] and cancelled.json["timers"] == []
    history = api.get(f"/cases/{case['id']}/history").json
    assert history[-1]["event"] == "case_cancelled" and history[-1]["detail"]["reason"] == "A duplicate of FAM-2"
    assert history[-1]["actor"] == "admin"
    assert api.post(f"/cases/{case['id']}/cancel", json={"reason": "again"}, as_="admin").status_code == 409
    assert api.get("/tasks").json == []


def test_two_people_claiming_one_task_at_once_get_one_200_and_one_409(api, app):
    api.deploy(PATHWAY)
    api.as_role("social_worker")
    for round_ in range(5):
        task_id = start(api, f"CLAIM-{round_}")["tasks"][0]["id"]
        barrier, answers = threading.Barrier(2), []

        def claim(as_):
            client = app.test_client()
            barrier.wait()
            answers.append(client.post(f"/api/v1/tasks/{task_id}/claim", json={},
                                       headers={"Authorization": f"Bearer {api.tokens[as_]}"}).status_code)

        threads = [threading.Thread(target=claim, args=(who,)) for who in ("worker", "user-social_worker")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(answers) == [200, 409], answers


def test_a_claim_on_a_task_someone_took_meanwhile_is_409(api, app):
    api.deploy(PATHWAY)
    api.as_role("social_worker")
    task_id = start(api)["tasks"][0]["id"]
    with app.app_context():
        from conftest import in_council
        from sqlalchemy import select

        from service.models import OpenTask, User

        in_council(db.session)
        task = db.session.get(OpenTask, task_id)
        worker = db.session.scalars(select(User).where(User.name == "worker")).one()
        taker = db.session.scalars(select(User).where(User.name == "user-social_worker")).one()
        db.session.execute(OpenTask.__table__.update().where(OpenTask.id == task_id).values(assignee_id=worker.id))
        db.session.commit()
        with pytest.raises(cases.Conflict, match="now with worker"):
            cases._assign(db.session, task, taker)


def test_only_a_holder_of_the_pathways_roles_starts_its_cases(api):
    api.deploy(PATHWAY)
    outsider = api.as_role("taf_coordinator")
    refused = api.post("/cases", json={"process": "test_review", "reference": "X-1", "data": {"needs": 3}},
                       as_=outsider)
    assert refused.status_code == 403 and "the role front door or social worker or team manager" in refused.json["message"]
    assert start(api, as_="manager")["status"] == "active"  # team_manager is one of its roles


def test_a_message_adds_to_what_the_case_knows_but_never_changes_it(api):
    api.deploy(PATHWAY)
    case = start(api)
    send = lambda data: api.post(f"/cases/{case['id']}/messages", json={"name": "immediate_risk", "data": data})  # noqa: E731
    huge = send({"what_happened": "A disclosure at school", "notes": "x" * 20_000})
    assert huge.status_code == 422 and "KB" in huge.json["errors"]["data"]
    long = send({"what_happened": "x" * 20_000})
    assert long.status_code == 422 and "5,000 characters" in long.json["errors"]["what_happened"]
    # Immediate risk always gets through; what it would have changed is kept out, and recorded.
    raised = send({"needs": -999, "outcome": "closed", "what_happened": "A disclosure at school"})
    assert raised.status_code == 200
    assert raised.json["data"]["needs"] == 3 and raised.json["data"]["what_happened"] == "A disclosure at school"
    assert raised.json["data"].get("outcome") in (None, "safeguarding_referral")
    kept = [e for e in api.get(f"/cases/{case['id']}/history").json if e["event"] == "message_answers_kept"]
    assert kept[0]["detail"]["not_changed"] == ["needs", "outcome"] and kept[0]["detail"]["sent"]["needs"] == -999


def test_a_retry_corrects_only_the_pathways_answers(api, app):
    api.deploy(PATHWAY)
    case = start(api)
    with app.app_context():
        from conftest import in_council

        in_council(db.session)
        row = db.session.get(Case, case["id"])
        row.status, row.error = "error", {"element": "Task_Level", "message": "test"}
        db.session.commit()
    wrong = api.post(f"/cases/{case['id']}/retry", json={"data": {"family_name": "TAMPERED"}})
    assert wrong.status_code == 422 and "family_name" in wrong.json["errors"]


def test_the_timer_service_stops_cleanly_during_a_sweep(app, monkeypatch):
    """A graceful restart never hangs: shutdown waits for the running sweep, which may not set an alarm."""
    service = scheduler.TimerService(app)
    app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600
    entered, release = threading.Event(), threading.Event()

    def slow_fire(app_, instant=None):
        entered.set()
        release.wait(10)
        return 0, set()

    monkeypatch.setattr(scheduler, "_fire_due", slow_fire)
    service.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=service.shutdown)
    stopper.start()
    release.set()
    stopper.join(15)
    assert not stopper.is_alive()


def test_a_runaway_step_stops_its_case_and_the_service_answers_meanwhile(database_url, tmp_path, frozen_clock):
    """The step limits of the settings hold through the service: a start and a timer firing each stop on time."""
    import time

    from conftest import Api, make_app, save_user
    from test_limits import pathway_xml

    app = make_app(database_url, ENGINE_STEP_SECONDS=0.5)
    with app.app_context():
        for name, roles in {"analyst": ["analyst"], "worker": ["social_worker"], "admin": ["admin"]}.items():
            save_user(db.session, name, roles, token=f"token-{name}")
        db.session.commit()
    api = Api(app, {n: f"token-{n}" for n in ("analyst", "worker", "admin")})
    runaway = tmp_path / "runaway"
    runaway.mkdir()
    (runaway / "bounds.bpmn").write_bytes(pathway_xml(script="while True: pass"))
    assert api.deploy(runaway).status_code == 201
    started = time.monotonic()
    case = api.post("/cases", json={"process": "bounds", "reference": "RUN-1", "data": {}}).json
    assert time.monotonic() - started < 10
    assert case["status"] == "error" and case["error"]["element"] == "Task_Script"
    assert "0.5 s" in case["error"]["message"] or "loops more than" in case["error"]["message"]
    # A bomb after a timer: the timer sweep stops that case and goes on with the others.
    later = tmp_path / "later"
    later.mkdir()
    (later / "bounds.bpmn").write_bytes(pathway_xml(script="big = 10_000_000_000", condition="${'x' * big == ''}", timer="PT1H"))
    deployed = api.deploy(later)
    assert deployed.status_code == 201, deployed.json
    poisoned = api.post("/cases", json={"process": "bounds", "reference": "RUN-2", "data": {}}).json
    assert poisoned["status"] == "active" and poisoned["timers"]
    frozen_clock.advance(hours=2)
    started = time.monotonic()
    scheduler.fire_due(app)
    assert time.monotonic() - started < 10
    stopped = api.get(f"/cases/{poisoned['id']}", as_="admin").json
    assert stopped["status"] == "error" and stopped["error"]["element"] == "Gateway_Check"
    assert "MB of memory" in stopped["error"]["message"]
    assert [n["kind"] for n in api.get("/notifications", as_="admin").json] == ["error"]
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_signal_reaches_every_waiting_case_of_the_council_and_starts_its_pathways(app, api, tmp_path):
    """Thrown by one case, or sent by the council's admin: caught by every waiting case, never another council's."""
    from conftest import save_user

    folder = tmp_path / "signals"
    folder.mkdir()
    for name in ("signal_catch", "signal_throw", "signal_start"):
        (folder / f"{name}.bpmn").write_bytes((FIXTURES / "constructs" / f"{name}.bpmn").read_bytes())
    assert api.deploy(folder).status_code == 201
    with app.app_context():
        save_user(db.session, "officer", ["education_officer"], token="token-officer")
        save_user(db.session, "elsewhere-admin", ["admin"], council="elsewhere", token="token-elsewhere-admin")
        save_user(db.session, "elsewhere-analyst", ["analyst"], council="elsewhere", token="token-elsewhere-analyst")
        db.session.commit()
    api.tokens.update({n: f"token-{n}" for n in ("officer", "elsewhere-admin", "elsewhere-analyst")})
    assert api.deploy(folder, as_="elsewhere-analyst").status_code == 201
    plans = []
    for reference in ("FAM-1", "FAM-2"):
        case = api.post("/cases", json={"process": "signal_catch", "reference": reference, "data": {}}).json
        api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}})
        plans.append(case["id"])
    other = api.post("/cases", json={"process": "signal_catch", "reference": "ELSE-1", "data": {}},
                     as_="elsewhere-admin").json
    api.post(f"/tasks/{other['tasks'][0]['id']}/complete", json={"data": {}}, as_="elsewhere-admin")
    thrower = api.post("/cases", json={"process": "signal_throw", "reference": "SCHOOL-1", "data": {}},
                       as_="officer").json
    done = api.post(f"/tasks/{thrower['tasks'][0]['id']}/complete", json={"data": {}}, as_="officer")
    assert done.status_code == 200, done.json
    for plan in plans:
        assert [t["name"] for t in api.get(f"/cases/{plan}").json["tasks"]] == ["Task_ArrangeCover"]
    assert [t["name"] for t in api.get(f"/cases/{other['id']}", as_="elsewhere-admin").json["tasks"]] == []
    sent = [e for e in api.get(f"/cases/{thrower['id']}/history", as_="officer").json if e["event"] == "signal_sent"]
    assert sorted(sent[0]["detail"]["to_cases"]) == sorted(plans) and len(sent[0]["detail"]["started"]) == 1
    # From outside: the council's admin only; a pathway it starts needs the reference.
    assert api.post("/signals", json={"name": "school_closure"}).status_code == 403
    assert api.post("/signals", json={"name": "school_closure"}, as_="admin").status_code == 422
    answer = api.post("/signals", json={"name": "school_closure", "reference": "SCHOOL-2"}, as_="admin")
    assert answer.status_code == 200 and answer.json["reached"] == [] and len(answer.json["started"]) == 1


# -- a database that will not wait any longer ---------------------------------------------------------

def _locked(*_args, **_kwargs):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    raise OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))


def test_a_request_the_database_is_too_busy_for_is_a_503_to_send_again(api, monkeypatch):
    monkeypatch.setattr(cases, "start_case", _locked)
    answer = api.post("/cases", json={"process": "test_review", "reference": "BUSY-1", "data": {}})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert "busy: nothing was changed" in answer.json["message"]


def test_a_page_the_database_is_too_busy_for_says_so_and_that_nothing_was_saved(app, tokens, monkeypatch):
    from conftest import Browser, page_text

    browser = Browser(app)
    browser.sign_in("worker", "password-worker")
    monkeypatch.setattr(cases, "open_tasks", _locked)
    answer = browser.get("/")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    text = page_text(answer)
    assert "Sorry, the service is busy" in text and "nothing you sent was saved" in text


def test_any_other_database_failure_is_not_called_busy(api, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def broken(*_args, **_kwargs):
        raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("no such table: cases"))

    monkeypatch.setattr(cases, "start_case", broken)
    answer = api.post("/cases", json={"process": "test_review", "reference": "BUSY-2", "data": {}})
    assert answer.status_code == 500 and "something went wrong on our side" in answer.json["message"]


def test_an_app_once_dropped_is_freed_with_all_it_holds(tmp_path):
    # Nothing outside an app may hold it (state lives in app.extensions): a module's CSRFProtect kept every app
    # it exempted the API's blueprints for, with its parsed pathways, and a test worker grew to ten million
    # objects whose full collections stopped it for 17 s, long enough to fail an engine step's time limit.
    app = make_app(f"sqlite:///{tmp_path / 'dropped.db'}")
    with app.app_context():
        save_user(db.session, "worker", ["social_worker"], token="token-worker")
        db.session.commit()
    client = app.test_client()
    assert client.get("/sign-in").status_code == 200
    assert client.get("/api/v1/tasks", headers={"Authorization": "Bearer token-worker"}).status_code == 200
    dropped = weakref.ref(app)
    del app, client
    gc.collect()
    assert dropped() is None
