"""Councils share one service and never see each other's children.

The isolation matrix: for every API endpoint and every page, a user of council "north" holding any role
gets 404 for every object of council "south" (not 403: not even the existence of a case leaks), on SQLite
and on PostgreSQL, where the service runs as an unprivileged role under row-level security. Lists never
show another council's objects. On PostgreSQL a query issued without the council scope returns nothing.
"""
from __future__ import annotations

import io
import re
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import create_engine, event, inspect, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.dialects import sqlite

from conftest import APP_ROLE, FIXTURES, Api, Browser, everything, in_council, make_app, password_hash, save_user
from service import cases as case_service
from service import scheduler, tenancy
from service.policy import Actor
from service.engine import clock
from service.models import (Case, Council, CouncilOwned, Membership, Notification, OpenTask, ProcessVersion,
                            SignalBroadcast, User, db)

PATHWAY = FIXTURES / "pathways"
#: Every role of the fixture pathway, the council's own roles and a manager: "any role" of the matrix.
ROLES = ["social_worker", "team_manager", "front_door", "admin", "analyst"]


@pytest.fixture
def councils(database_url, frozen_clock):
    """Two councils with the same pathway; south has a case with an open task, a timer and a notification."""
    app = make_app(database_url)
    tokens = {}
    with app.app_context():
        for council in ("north", "south"):
            for role in ROLES:
                name = f"{council}-{role}"
                user, _ = save_user(db.session, name, [role], council=council, token=f"token-{name}")
                user.password_hash = password_hash(f"pw-{name}")
                tokens[name] = f"token-{name}"
        db.session.commit()
    api = Api(app, tokens)
    deployed = {council: api.deploy(PATHWAY, as_=f"{council}-analyst") for council in ("north", "south")}
    assert all(response.status_code == 201 for response in deployed.values())
    assert api.deploy(FIXTURES / "decision_service", as_="south-analyst").status_code == 201  # south's alone
    case = api.post("/cases", json={"process": "test_review", "reference": "SOUTH-1", "data": {"needs": 3, "family_name": "Southey"},
                                    "child": {"given_name": "Sam", "family_name": "SOUTHey", "date_of_birth": "2015-03-09"}},
                    as_="south-social_worker").json
    document = api.post(f"/cases/{case['id']}/documents", as_="south-social_worker", content_type="multipart/form-data",
                        data={"file": (io.BytesIO(b"%PDF-1.7 SOUTH"), "south.pdf"), "title": "South's"}).json
    frozen_clock.advance(days=2, minutes=1)
    assert scheduler.fire_due(app) == 1  # a reminder for south's social worker
    with app.app_context(), everything():
        south_version = db.session.scalars(select(ProcessVersion.id).where(ProcessVersion.key == "test_review")
                                           .join(Council).where(Council.key == "south")).one()
    rehearsal = api.post("/rehearsals", json={"version_id": south_version, "data": {"needs": 2}}, as_="south-analyst")
    assert rehearsal.status_code == 201, rehearsal.json
    with app.app_context(), everything():
        notification = db.session.scalars(select(Notification)).one()
        council_id = db.session.scalars(select(Council.id).where(Council.key == "south")).one()
        broadcast = SignalBroadcast(council_id=council_id, name="school_closure", payload={}, sent_by="south-admin",
                                    sent_at=clock.now(), due_at=clock.now(), up_to_case_id=case["id"],
                                    after_case_id=case["id"], finished_at=clock.now())  # a signal sent to many
        db.session.add(broadcast)
        db.session.commit()
        south = {"case": case["id"], "task": case["tasks"][0]["id"], "notification": notification.id,
                 "document": document["id"], "rehearsal": rehearsal.json["id"],
                 "rehearsal_task": rehearsal.json["tasks"][0]["id"], "broadcast": broadcast.id,
                 "key": "test_review", "decision": "Decision_Adult",
                 "service": "DecisionService_Adult", "family": case["family_id"], "person": case["child"]["id"],
                 "deployment": deployed["south"].json["id"], "number": 1, "worker": "south-social_worker",
                 "version": db.session.scalars(select(ProcessVersion.id).join(Case, Case.process_version_id == ProcessVersion.id)
                                               .where(Case.id == case["id"])).one()}
    yield api, south
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# -- the API -------------------------------------------------------------------------------------

#: How to fill each URL parameter with south's object; an endpoint with any other parameter fails the test,
#: so that a new endpoint cannot escape the matrix.
PARAMETERS = {"case_id": "case", "task_id": "task", "key": "key", "decision_id": "decision",
              "service_id": "service", "notification_id": "notification", "family_id": "family", "person_id": "person",
              "document_id": "document", "deployment_id": "deployment", "version_id": "version", "number": "number",
              "element": "key",  # a BPMN element id (an ad-hoc sub-process): any text; the case is what is checked
              "rehearsal_id": "rehearsal", "name": "worker", "broadcast_id": "broadcast"}
#: Endpoints that name no object: what they list must not include south's objects.
LISTS = {"/api/v1/processes", "/api/v1/tasks", "/api/v1/notifications", "/api/v1/tracker", "/api/v1/council",
         "/api/v1/cases", "/api/v1/access-log", "/api/v1/families", "/api/v1/people",
         "/api/v1/people/likely-duplicates", "/api/v1/notifications/read", "/api/v1/workload",
         "/api/v1/workload/reassign", "/api/v1/workload/waiting", "/api/v1/deployments", "/api/v1/versions", "/api/v1/rehearsals"}  # names tasks in its body: test_workload_never_reaches_another_council
NOT_COUNCIL_DATA = {"/api/v1/openapi.json", "/api/v1/signals", "/api/v1/messages",
                    "/api/v1/tokens", "/api/v1/tokens/revoke"}  # tokens: the caller's own (test_api_tokens.py)


def _api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and not rule.rule.startswith("/api/v1/operator/"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_api_endpoint_answers_404_for_another_councils_objects(councils):
    api, south = councils
    checked = 0
    for rule, method in _api_routes(api.app):
        if not rule.arguments:
            assert rule.rule in LISTS | NOT_COUNCIL_DATA, f"{rule.rule}: classify this endpoint in the matrix"
            continue
        unknown = set(rule.arguments) - set(PARAMETERS)
        assert not unknown, f"{rule.rule}: add {unknown} to the isolation matrix"
        path = rule.rule
        for argument in rule.arguments:
            path = re.sub(rf"<(?:\w+:)?{argument}>", str(south[PARAMETERS[argument]]), path)
        if "<" in path:
            continue
        for role in ROLES:
            if rule.rule.endswith("/processes/<string:key>") or "/processes/<string:key>/copy" in rule.rule \
                    or "/processes/<string:key>/versions/" in rule.rule:
                continue  # north has its own pathway 'review': the same key is its own, checked below
            response = api.client.open(path, method=method, json={"data": {}, "name": "family_update", "inputs": {},
                                                                   "reason": "a reason"},
                                       headers={"Authorization": f"Bearer token-north-{role}"})
            assert response.status_code == 404, f"{method} {path} as north's {role}: {response.status_code}"
            assert "SOUTH" not in response.get_data(as_text=True)
            checked += 1
    assert checked >= 5 * len(ROLES)


def test_lists_show_only_the_councils_own(councils):
    api, south = councils
    for role in ROLES:
        as_ = f"north-{role}"
        assert api.get("/tasks", as_=as_).json == []
        assert api.get("/notifications", as_=as_).json == []
        assert api.get("/cases", as_=as_).json["total"] == 0
        if role != "analyst":  # people are for case workers (an analyst gets 403)
            assert api.get("/cases?q=sam", as_=as_).json["total"] == 0
            assert api.get("/families", as_=as_).json["total"] == 0
            assert api.get("/people?q=southey", as_=as_).json["total"] == 0
            assert api.get("/people?date_of_birth=2015-03-09", as_=as_).json["total"] == 0
            assert api.post("/people/likely-duplicates", json={"given_name": "Sam", "family_name": "Southey",
                                                               "date_of_birth": "2015-03-09"}, as_=as_).json["people"] == []
        assert all(t["case_id"] != south["case"] for t in api.get("/tasks?overdue=true", as_=as_).json)
        assert api.get("/council", as_=as_).json["key"] == "north"
        if role in ("analyst", "admin"):  # pathway versions are for analysts (and approvers)
            assert south["deployment"] not in [d["id"] for d in api.get("/deployments", as_=as_).json]
            assert south["version"] not in [v["id"] for v in api.get("/versions", as_=as_).json]
            assert api.get("/rehearsals", as_=as_).json == []  # south's rehearsal is not north's
    assert [t["case_id"] for t in api.get("/tasks", as_="south-social_worker").json] == [south["case"]]
    assert api.get("/cases?q=sam", as_="south-social_worker").json["total"] == 1  # the search itself works
    assert len(api.get("/notifications", as_="south-social_worker").json) == 1
    for role in ROLES:  # marking all read in north leaves south's unread
        assert api.post("/notifications/read", as_=f"north-{role}").json["marked"] == 0
    assert api.get("/notifications?unread=true", as_="south-social_worker").json[0]["read_at"] is None


def test_the_same_process_key_is_each_councils_own_pathway(councils):
    api, south = councils
    north_case = api.post("/cases", json={"process": "test_review", "reference": "NORTH-1", "data": {"needs": 3}},
                          as_="north-social_worker")
    assert north_case.status_code == 201
    assert north_case.json["id"] != south["case"]
    # A process only south has is not there for north, to read or to start.
    with api.app.app_context():
        in_council(db.session, "south")
        db.session.execute(update(ProcessVersion).where(ProcessVersion.key == "test_review")  # south's only
                           .values(key="south_only"))
        db.session.commit()
    assert api.get("/processes/south_only", as_="north-admin").status_code == 404
    assert api.post("/cases", json={"process": "south_only", "reference": "X", "data": {"needs": 3}},
                    as_="north-admin").status_code == 404
    assert "south_only" in [p["key"] for p in api.get("/processes", as_="south-admin").json]
    assert "south_only" not in [p["key"] for p in api.get("/processes", as_="north-admin").json]


def test_an_analyst_deploys_into_their_own_council_only(councils):
    api, _ = councils
    again = api.deploy(PATHWAY, as_="north-analyst")
    assert again.status_code == 201 and again.json["created"] is False  # north's own latest, unchanged
    with api.app.app_context(), everything():
        versions = db.session.execute(select(Council.key, ProcessVersion.key, ProcessVersion.version)
                                      .join(Council, Council.id == ProcessVersion.council_id)).all()
    assert sorted(versions) == [("north", "test_review", 1), ("south", "test_review", 1)]


def test_a_council_copies_another_councils_pathway_as_a_starting_point(councils):
    api, _ = councils
    with api.app.app_context():
        save_user(db.session, "west-analyst", ["analyst"], council="west", token="token-west-analyst")
        db.session.commit()
    api.tokens["west-analyst"] = "token-west-analyst"
    assert api.get("/processes/test_review", as_="west-analyst").status_code == 404
    copied = api.post("/processes/test_review/copy", json={"from_council": "south"}, as_="west-analyst")
    assert copied.status_code == 201, copied.json
    assert [p["key"] for p in copied.json["processes"]] == ["test_review"]
    assert api.get("/processes/test_review", as_="west-analyst").json["roles"] == ["front_door", "social_worker",
                                                                                "team_manager"]
    assert api.post("/processes/test_review/copy", json={"from_council": "south"},
                    as_="south-social_worker").status_code == 403
    assert api.post("/processes/test_review/copy", json={"from_council": "nowhere"},
                    as_="west-analyst").status_code == 404


# -- the pages -----------------------------------------------------------------------------------

def test_every_page_answers_404_for_another_councils_objects(councils):
    api, south = councils
    pages = [("GET", f"/cases/{south['case']}"), ("GET", f"/cases/{south['case']}/diagram.bpmn"),
             ("GET", f"/tasks/{south['task']}"), ("POST", f"/tasks/{south['task']}"),
             ("POST", f"/tasks/{south['task']}/claim"), ("GET", f"/families/{south['family']}"),
             ("GET", f"/cases/{south['case']}/started"), ("GET", f"/cases/{south['case']}/notes/new"),
             ("POST", f"/cases/{south['case']}/notes/new"), ("GET", f"/cases/{south['case']}/documents/new"),
             ("POST", f"/cases/{south['case']}/documents/new"),
             ("GET", f"/cases/{south['case']}/documents/{south['document']}"),
             ("POST", f"/manager/cases/{south['case']}/retry"),
             ("GET", f"/cases/{south['case']}/immediate-risk"),
             ("POST", f"/cases/{south['case']}/immediate-risk"), ("POST", f"/cases/{south['case']}/immediate-risk/send"),
             ("GET", f"/cases/{south['case']}/immediate-risk/sent"),
             ("POST", f"/notifications/{south['notification']}/read"),
             ("GET", f"/analyst/versions/{south['version']}"), ("GET", f"/analyst/versions/{south['version']}/diagram.bpmn"),
             ("GET", f"/analyst/versions/{south['version']}/files/review.bpmn"),
             ("GET", f"/analyst/versions/{south['version']}/diff"), ("GET", f"/analyst/versions/{south['version']}/cases"),
             ("GET", f"/analyst/cases/{south['case']}"), ("POST", f"/analyst/cases/{south['case']}/retry"),
             ("POST", f"/analyst/cases/{south['case']}/cancel"), ("GET", f"/analyst/versions/{south['version']}/edit"),
             ("POST", f"/analyst/versions/{south['version']}/check"), ("POST", f"/analyst/versions/{south['version']}/save"),
             ("POST", f"/analyst/versions/{south['version']}/new-file"),
             ("GET", f"/analyst/versions/{south['version']}/migration"), ("POST", f"/analyst/versions/{south['version']}/migration"),
             ("POST", f"/analyst/versions/{south['version']}/scenarios/run"),
             ("POST", f"/cases/{south['case']}/ad-hoc/SubProcess_Checks/finish"),
             ("GET", f"/analyst/versions/{south['version']}/rehearse"), ("POST", f"/analyst/versions/{south['version']}/rehearse"),
             ("GET", f"/workload/workers/{south['worker']}")]
    pages += [("POST", f"/analyst/versions/{south['version']}/{action}") for action in (
        "submit", "publish", "suspend", "resume", "retire")]
    pages += [("GET", f"/analyst/approvals/{south['deployment']}"), ("POST", f"/analyst/approvals/{south['deployment']}/publish"),
              ("POST", f"/analyst/approvals/{south['deployment']}/reject")]
    pages += [(method, f"/analyst/rehearsals/{south['rehearsal']}{tail}") for method, tail in (
        ("GET", ""), ("POST", "/clock"), ("POST", "/send"), ("GET", f"/tasks/{south['rehearsal_task']}"),
        ("POST", f"/tasks/{south['rehearsal_task']}"), ("POST", "/scenario"), ("POST", "/delete"))]
    page_rules = {r.rule for r in api.app.url_map.iter_rules() if not r.rule.startswith(("/api/", "/static"))
                  and r.arguments}
    with api.app.app_context():  # a pathway only south has: north cannot start it from the pages
        in_council(db.session, "south")
        db.session.execute(update(ProcessVersion).where(ProcessVersion.key == "test_review").values(key="south_only"))
        db.session.commit()
    assert page_rules == {"/cases/<int:case_id>", "/cases/<int:case_id>/diagram.bpmn", "/tasks/<string:task_id>",
                          "/tasks/<string:task_id>/claim", "/families/<int:family_id>", "/cases/<int:case_id>/started",
                          "/start/<string:key>", "/cases/<int:case_id>/notes/new",
                          "/cases/<int:case_id>/documents/new", "/cases/<int:case_id>/documents/<int:document_id>",
                          "/manager/cases/<int:case_id>/retry", "/cases/<int:case_id>/immediate-risk",
                          "/cases/<int:case_id>/immediate-risk/send", "/cases/<int:case_id>/immediate-risk/sent",
                          "/notifications/<int:notification_id>/read", "/analyst/versions/<int:version_id>",
                          "/analyst/versions/<int:version_id>/diagram.bpmn", "/analyst/versions/<int:version_id>/diff",
                          "/analyst/versions/<int:version_id>/files/<string:name>", "/analyst/versions/<int:version_id>/cases",
                          "/analyst/cases/<int:case_id>", "/analyst/cases/<int:case_id>/retry",
                          "/analyst/cases/<int:case_id>/cancel", "/analyst/versions/<int:version_id>/edit",
                          "/analyst/versions/<int:version_id>/check", "/analyst/versions/<int:version_id>/save",
                          "/analyst/versions/<int:version_id>/new-file",
                          "/analyst/versions/<int:version_id>/migration",
                          "/analyst/versions/<int:version_id>/scenarios/run",
                          "/cases/<int:case_id>/ad-hoc/<string:element>/finish",
                          "/analyst/versions/<int:version_id>/rehearse",
                          "/analyst/rehearsals/<int:rehearsal_id>", "/analyst/rehearsals/<int:rehearsal_id>/clock",
                          "/analyst/rehearsals/<int:rehearsal_id>/send", "/analyst/rehearsals/<int:rehearsal_id>/scenario",
                          "/analyst/rehearsals/<int:rehearsal_id>/tasks/<string:task_id>",
                          "/analyst/rehearsals/<int:rehearsal_id>/delete",
                          *(f"/analyst/versions/<int:version_id>/{action}" for action in (
                              "submit", "publish", "suspend", "resume", "retire")),
                          "/analyst/approvals/<int:deployment_id>", "/analyst/approvals/<int:deployment_id>/publish",
                          "/analyst/approvals/<int:deployment_id>/reject", "/workload/workers/<worker>"}, "a new page with an object in its URL: add it here"
    for role in ROLES:
        browser = Browser(api.app)
        browser.sign_in(f"north-{role}")
        for method, path in pages:
            response = browser.get(path) if method == "GET" else browser.post(path, {"action": "draft",
                                                                                     "what_happened": "x"})
            assert response.status_code == 404, f"{method} {path} as north's {role}"
            assert "SOUTH" not in response.get_data(as_text=True)
        assert "SOUTH-1" not in browser.get("/").get_data(as_text=True)
        for listing in ("/cases?q=sam", "/cases?q=south", "/cases/team", "/cases/mine"):
            assert "SOUTH-1" not in browser.get(listing).get_data(as_text=True), listing
        assert browser.get("/start/south_only").status_code == 404  # south's own pathway
        if role in ("team_manager", "admin"):
            for path in ("/manager", "/workload", "/manager/cases", "/manager/cases?status=active"):
                assert "SOUTH-1" not in browser.get(path).get_data(as_text=True)
            given = browser.post("/workload/reassign", {"tasks": south["task"], "assignee": f"north-{role}"})
            assert given.status_code in (404, 422) and "SOUTH" not in given.get_data(as_text=True)


# -- people who work for several councils, and the operator ---------------------------------------

def test_a_user_of_two_councils_names_the_one_they_act_for(councils):
    api, south = councils
    with api.app.app_context():
        save_user(db.session, "regional", ["social_worker"], council="north", token="token-regional")
        save_user(db.session, "regional", ["social_worker"], council="south", token="token-regional")
        db.session.commit()
    headers = {"Authorization": "Bearer token-regional"}
    unnamed = api.client.get("/api/v1/tasks", headers=headers)
    assert unnamed.status_code == 400 and unnamed.json["councils"] == ["north", "south"]
    in_south = api.client.get("/api/v1/tasks", headers={**headers, "X-Council": "south"}).json
    assert [t["case_id"] for t in in_south] == [south["case"]]
    assert api.client.get("/api/v1/tasks", headers={**headers, "X-Council": "north"}).json == []
    assert api.client.get(f"/api/v1/cases/{south['case']}", headers={**headers, "X-Council": "north"}).status_code == 404
    assert api.client.get("/api/v1/tasks", headers={**headers, "X-Council": "east"}).status_code == 403


def test_a_user_of_two_councils_chooses_in_the_pages(councils):
    api, south = councils
    with api.app.app_context():
        for council in ("north", "south"):
            save_user(db.session, "regional", ["social_worker"], council=council, token="token-regional")
        db.session.scalars(select(User).where(User.name == "regional")).one().password_hash = password_hash("pw-regional")
        db.session.commit()
    browser = Browser(api.app)
    browser.get("/sign-in")
    browser.post("/sign-in", {"name": "regional", "password": "pw-regional"})
    chooser = browser.get("/")
    assert chooser.status_code == 302 and "/council" in chooser.headers["Location"]
    page = browser.get("/council")
    assert "North Council" in page.get_data(as_text=True) and "South Council" in page.get_data(as_text=True)
    assert browser.post("/council", {"council": "east"}).status_code == 422
    assert browser.post("/council", {"council": "north"}).status_code == 302
    assert "SOUTH-1" not in browser.get("/").get_data(as_text=True)
    assert browser.get(f"/cases/{south['case']}").status_code == 404
    assert browser.post("/council", {"council": "south"}).status_code == 302
    assert "SOUTH-1" in browser.get("/").get_data(as_text=True)


def test_the_token_read_sets_the_council_scope_only_for_a_token_it_verifies(councils, monkeypatch):
    """On PostgreSQL the statement that reads the caller's token also sets the transaction's council scope, for
    the council the cached caller acts for (one statement fewer a request), and only when the row it reads shows
    the token unrevoked and unexpired and its user as cached (same id and session version). Otherwise the token
    is refused, or the scope is set as before, once the caller's councils have been read again."""
    from datetime import timedelta

    from service.engine import clock
    from service.models import ApiToken

    api, south = councils
    app = api.app
    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    with app.app_context():
        save_user(db.session, "regional", ["social_worker"], council="north", token="token-regional")
        save_user(db.session, "regional", ["social_worker"], council="south", token="token-regional")
        db.session.commit()
        with everything():
            ids = {c.key: str(c.id) for c in db.session.scalars(select(Council))}
    set_by_token, sent = [], []
    real = tenancy.scope_was_set
    monkeypatch.setattr(tenancy, "scope_was_set", lambda session, row: (set_by_token.append(row.scope_council),
                                                                        real(session, row)))
    with app.app_context():
        engine = db.engine

    def seen(conn, cursor, statement, *args):
        sent.append(statement)

    def tasks(council: str):
        sent.clear()
        response = api.client.get("/api/v1/tasks", headers={"Authorization": "Bearer token-regional", "X-Council": council})
        scope_statements = [s for s in sent if "set_config" in s and "api_tokens" not in s]
        return response, scope_statements

    def change(**values):
        with app.app_context():
            db.session.execute(update(ApiToken).values(**values))
            db.session.commit()

    from sqlalchemy import event
    event.listen(engine, "before_cursor_execute", seen)
    try:
        first, _ = tasks("south")  # not cached yet: the councils are read, then the scope set
        assert [t["case_id"] for t in first.json] == [south["case"]] and set_by_token == []
        again, scope_statements = tasks("south")
        assert [t["case_id"] for t in again.json] == [south["case"]]  # under row-level security: the scope holds
        if postgres:
            assert set_by_token == [ids["south"]] and scope_statements == []
        north, scope_statements = tasks("north")  # the header picks the other council of the cached caller
        assert north.status_code == 200 and north.json == []
        if postgres:
            assert set_by_token[-1] == ids["north"] and scope_statements == []

        with app.app_context():  # new roles, in another process: the user's session version moves on
            db.session.execute(update(User).where(User.name == "regional")
                               .values(session_version=User.session_version + 1))
            db.session.commit()
        moved, scope_statements = tasks("south")
        assert [t["case_id"] for t in moved.json] == [south["case"]]
        if postgres:
            assert set_by_token[-1] == "" and len(scope_statements) == 2  # the user's scope, then the council's

        change(revoked_at=clock.now())
        revoked, scope_statements = tasks("south")
        assert revoked.status_code == 401 and scope_statements == []
        if postgres:
            assert set_by_token[-1] == ""
        change(revoked_at=None, expires_at=clock.now() - timedelta(minutes=1))
        expired, scope_statements = tasks("south")
        assert expired.status_code == 401 and scope_statements == []
        if postgres:
            assert set_by_token[-1] == ""
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_the_council_scope_is_sent_once_a_transaction_and_again_after_a_savepoint_rolled_back(app):
    """A scope the transaction already holds is not sent again; a savepoint rolled back undoes a scope set inside
    it (PostgreSQL), so the next act_for sends it again."""
    from sqlalchemy import event

    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    sent = []
    with app.app_context():
        engine = db.engine

        def seen(conn, cursor, statement, *args):
            sent.append(statement)

        def scope() -> str | None:
            return db.session.execute(text("SELECT current_setting('app.council_id', true)")).scalar() if postgres else None

        north = in_council(db.session, "north")
        south = in_council(db.session, "south")
        db.session.commit()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            tenancy.act_for(db.session, north)
            tenancy.act_for(db.session, north)
            assert len([s for s in sent if "set_config" in s]) == (1 if postgres else 0)  # at the transaction's start
            savepoint = db.session.begin_nested()
            tenancy.act_for(db.session, south)
            assert scope() == (str(south.id) if postgres else None)
            savepoint.rollback()  # the database's scope is north's again
            tenancy.act_for(db.session, south)
            assert scope() == (str(south.id) if postgres else None)
            db.session.commit()
            sent.clear()
            tenancy.act_for(db.session, south)
            assert scope() == (str(south.id) if postgres else None)
            assert len([s for s in sent if "set_config" in s]) == (1 if postgres else 0)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
            db.session.rollback()


def test_the_operator_creates_councils_and_counts_but_reads_no_case(councils):
    api, south = councils
    with api.app.app_context():
        from service.auth import save_user as save_any_user

        save_any_user(db.session, "op", [], token="token-op", operator=True)
        db.session.commit()
    api.tokens["op"] = "token-op"
    created = api.post("/operator/councils", json={"key": "east", "name": "East Council", "admin": "east-admin",
                                                   "settings": {"country": "wales"}}, as_="op")
    assert created.status_code == 201, created.json
    assert created.json["council"]["country"] == "wales"
    api.tokens["east-admin"] = created.json["admin_token"]
    assert api.get("/council", as_="east-admin").json["name"] == "East Council"
    assert api.post("/operator/councils", json={"key": "east", "name": "Again"}, as_="op").status_code == 409
    assert api.post("/operator/councils", json={"key": "Bad Key!", "name": "X"}, as_="op").status_code == 422
    health = api.get("/operator/health", as_="op")
    assert health.status_code == 200
    south_counts = next(c for c in health.json["councils"] if c["key"] == "south")
    assert south_counts["cases"] == {"active": 1} and south_counts["open_tasks"] == 1
    assert "SOUTH-1" not in health.get_data(as_text=True) and "Southey" not in health.get_data(as_text=True)
    # The operator works for no council: case data is not theirs to read.
    assert api.get(f"/cases/{south['case']}", as_="op").status_code == 403
    assert api.get("/tasks", as_="op").status_code == 403
    # And a council's staff are not the operator.
    assert api.get("/operator/health", as_="south-admin").status_code == 403
    with api.app.app_context():
        db.session.scalars(select(User).where(User.name == "op")).one().password_hash = password_hash("pw-op")
        db.session.commit()
    browser = Browser(api.app)
    browser.get("/sign-in")
    browser.post("/sign-in", {"name": "op", "password": "pw-op"})
    landing = browser.get("/")
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/operator")
    page = browser.get("/operator").get_data(as_text=True)
    assert "South Council" in page and "East Council" in page and "SOUTH-1" not in page
    assert browser.get(f"/cases/{south['case']}").status_code == 302  # to /operator: no council, no case
    south_admin = Browser(api.app)
    south_admin.sign_in("south-admin")
    assert south_admin.get("/operator").status_code == 404


# -- the walls themselves -------------------------------------------------------------------------

def test_the_orm_refuses_council_data_outside_any_scope(councils):
    api, south = councils
    with api.app.app_context():
        with pytest.raises(tenancy.Unscoped):
            db.session.scalars(select(Case)).all()
        db.session.rollback()
        in_council(db.session, "north")
        assert db.session.get(Case, south["case"]) is None
        assert db.session.scalars(select(OpenTask)).all() == []
        with pytest.raises(tenancy.Unscoped):  # a row of another council cannot be written from here
            south_id = db.session.scalars(select(Council.id).where(Council.key == "south")).one()
            db.session.add(Membership(user_id=1, council_id=south_id, role="x"))
            db.session.add(Notification(council_id=south_id, user_id=1, kind="reminder", subject="s", body="b"))
            db.session.flush()
        db.session.rollback()


def test_the_task_lists_statement_built_once_keeps_the_orm_wall(councils):
    """The task lists run one statement built once per shape on the session's connection
    (``tenancy.execute_built``), not through ``session.execute``, where the ORM wall would add its criteria to
    each run (a new statement to key and compile: half a list's service time). So the statement carries the
    wall itself: every council-owned table in it is filtered by the acting council, and it refuses to run
    outside a council's scope."""
    api, south = councils
    with api.app.app_context():
        engine = db.engine
    sent, through_orm = [], []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    def orm(state):
        through_orm.append(str(state.statement))

    event.listen(engine, "before_cursor_execute", record)
    event.listen(Session, "do_orm_execute", orm)
    try:
        assert [t["case_id"] for t in api.get("/tasks", as_="south-social_worker").json] == [south["case"]]
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(Session, "do_orm_execute", orm)
    roles = ("array_agg(task_roles.role)", "json_group_array(task_roles.role)")  # the list's own column
    listed = [(s, p) for s, p in sent if any(r in s for r in roles)]
    assert len(listed) == 1
    statement, parameters = listed[0]
    words = " ".join(statement.split())
    for table in ("tasks", "task_roles", "cases", "process_versions"):
        assert re.search(rf"\b{table}\.council_id = (%\(wall_council\)s|\?)", words), (table, words)
    south_id = parameters[tenancy.SCOPE] if isinstance(parameters, dict) else None
    if south_id is not None:
        with api.app.app_context(), everything():
            assert south_id == db.session.scalars(select(Council.id).where(Council.key == "south")).one()
    assert not any(r in s for s in through_orm for r in roles)  # the saving: no per-run ORM statement
    with api.app.app_context():
        with pytest.raises(tenancy.Unscoped):
            case_service.open_tasks(db.session, Actor("nobody", ("social_worker",), 1, None))


def test_the_completions_plain_read_finds_only_the_acting_councils_rows(councils):
    """The completion's read (``cases._open_tasks_as_read``), built once, runs on the connection with the wall's
    criteria on every table it joins, the council their parameter: it finds the task in its own council and
    nothing in another, and refuses to run with no scope or across all councils. The wall every ORM statement
    gets takes the council as a parameter too."""
    api, south = councils
    statement, _ = case_service._open_tasks_read()
    words = " ".join(str(statement.compile(dialect=sqlite.dialect())).split())
    for table in ("tasks", "task_roles", "cases", "process_versions", "pending_timers"):
        assert re.search(rf"\b{table}\.council_id = \?", words), (table, words)
    with api.app.app_context():
        in_council(db.session, "south")
        [task] = case_service._open_tasks_as_read(db.session, south["task"])
        assert task.id == south["task"] and task.case.id == south["case"]
        db.session.rollback()
        in_council(db.session, "north")
        assert case_service._open_tasks_as_read(db.session, south["task"]) == []
        assert db.session.get(Case, south["case"]) is None
        assert db.session.scalars(select(OpenTask).where(OpenTask.id == south["task"])).all() == []
        db.session.rollback()
        tenancy.leave(db.session)
        with pytest.raises(tenancy.Unscoped):
            case_service._open_tasks_as_read(db.session, south["task"])
        db.session.rollback()
        with everything(), pytest.raises(tenancy.Unscoped):
            case_service._open_tasks_as_read(db.session, south["task"])
        db.session.rollback()


def test_a_pathways_current_version_is_the_acting_councils(councils):
    """A case start reads the pathway's current version as a plain row (``deployments.current_version``), with
    the wall's criteria in it: each council gets its own version of the same pathway; it is refused with no scope
    or across all councils."""
    from service import deployments

    api, _ = councils
    words = " ".join(str(deployments._current_version_row().compile(dialect=sqlite.dialect())).split())
    assert re.search(r"\bprocess_versions\.council_id = \?", words), words
    with api.app.app_context():
        found = {}
        for key in ("north", "south"):
            council = in_council(db.session, key)
            version = deployments.current_version(db.session, "test_review")
            assert version.council_id == council.id and version in db.session and not db.session.is_modified(version)
            found[key] = version.id
            assert deployments.current_version(db.session, "no_such_pathway") is None
            db.session.rollback()
        assert found["north"] != found["south"]
        tenancy.leave(db.session)
        with pytest.raises(tenancy.Unscoped):
            deployments.current_version(db.session, "test_review")
        db.session.rollback()
        with everything(), pytest.raises(tenancy.Unscoped):
            deployments.current_version(db.session, "test_review")
        db.session.rollback()


@pytest.mark.postgres
def test_row_level_security_returns_nothing_without_the_council_scope(postgres_url, frozen_clock):
    app = make_app(postgres_url)
    with app.app_context():
        for council in ("north", "south"):
            in_council(db.session, council)
            save_user(db.session, f"{council}-worker", ["social_worker"], council=council, token=f"t-{council}")
        db.session.commit()
    api = Api(app, {"south": "t-south", "north": "t-north"})
    with app.app_context():
        save_user(db.session, "south-analyst", ["analyst"], council="south", token="t-south-analyst")
        db.session.commit()
    api.tokens["south-analyst"] = "t-south-analyst"
    assert api.deploy(PATHWAY, as_="south-analyst").status_code == 201
    assert api.post("/cases", json={"process": "test_review", "reference": "S-1", "data": {"needs": 3}}, as_="south").status_code == 201
    engine = create_engine(postgres_url.replace("://postgres@", f"://{APP_ROLE}@"))
    try:
        with engine.connect() as connection:
            count = "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM tasks), (SELECT count(*) FROM " \
                    "audit_events), (SELECT count(*) FROM process_versions), (SELECT count(*) FROM memberships)"
            assert connection.execute(text(count)).one() == (0, 0, 0, 0, 0)  # no scope: nothing
            north, south = (connection.execute(text("SELECT id FROM councils WHERE key = :k"), {"k": k}).scalar_one()
                            for k in ("north", "south"))
            connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(north)})
            assert connection.execute(text(count)).one()[:4] == (0, 0, 0, 0)
            connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(south)})
            cases, tasks, audit, versions, _ = connection.execute(text(count)).one()
            assert cases == 1 and tasks == 1 and audit >= 1 and versions == 1
            with pytest.raises(Exception, match="row-level security"):  # and no row can be written into north
                connection.execute(text("INSERT INTO audit_events (case_id, at, actor, event, detail, council_id) "
                                        "SELECT id, now(), 'x', 'x', '{}', :n FROM cases"), {"n": north})
    finally:
        engine.dispose()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_row_level_security_reads_the_councils_setting_once_a_statement_not_once_a_row(postgres_url):
    """Every table's wall reads the transaction's council (and whether it acts across councils) once per
    statement, then compares each row with it: called for each row a scan reads, ``current_setting`` was about half
    the time of counting a list's 10,001 cases at a million."""
    app = make_app(postgres_url)
    engine = create_engine(postgres_url.replace("://postgres@", f"://{APP_ROLE}@"))
    try:
        with engine.connect() as connection:
            walled = connection.execute(text("SELECT tablename FROM pg_policies WHERE policyname = 'council_isolation'"
                                             )).scalars().all()
            assert {"cases", "tasks", "task_roles", "pending_timers", "audit_events", "memberships"} <= set(walled)
            for table in walled:
                plan = "\n".join(connection.execute(text(f"EXPLAIN SELECT * FROM {table}")).scalars())
                assert "InitPlan" in plan, (table, plan)
                filtered = [line for line in plan.splitlines() if "Filter:" in line]
                assert filtered and not any("current_setting" in line for line in filtered), (table, plan)
    finally:
        engine.dispose()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _sqlite_plans(run) -> list[str]:
    """The SQLite query plan of each statement ``run`` sends in the app context (as the service sends it: the
    wall's criteria in it)."""
    sent: list[tuple[str, tuple]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    connection = db.session.connection()
    return ["\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            for statement, parameters in sent]


def _a_value(column):
    kind = column.type.python_type
    return {int: 1, str: "x", bool: True, datetime: datetime(2026, 1, 1, tzinfo=timezone.utc),
            date: date(2026, 1, 1)}.get(kind)


def test_on_sqlite_a_cases_rows_are_looked_up_by_the_case_never_through_the_councils_index(sqlite_app):
    """SQLite keeps no statistics unless told to: to its planner the wall's ``council_id = ?`` looked as selective
    as ``case_id = ?``, so a case's tasks, timers, audit events or notes, a task's roles, a user's notifications
    and a case by its reference were found by reading every row of the council (19 such lookups among the
    council-owned tables' indexes). Each lookup by an indexed column now uses that column's index (a case's
    pathway version's: the index that begins with the council, which a stronger hint than the wall's would
    forbid), and so does the completion's read, whatever the council holds."""
    models = [mapper.class_ for mapper in db.Model.registry.mappers if issubclass(mapper.class_, CouncilOwned)]
    looked_up = []
    with sqlite_app.app_context():
        in_council(db.session)
        for model in models:
            table = model.__table__
            for index in table.indexes:
                column = list(index.columns)[0]
                value = _a_value(column)
                if column.name in ("council_id", "id") or value is None:
                    continue
                attribute = next(a for a in inspect(model).column_attrs if a.columns[0] is column)
                query = select(model).where(getattr(model, attribute.key) == value)
                plans = _sqlite_plans(lambda: db.session.execute(query).all())
                looked_up.append((table.name, column.name, plans[0]))
        [read] = _sqlite_plans(lambda: tenancy.execute_built(
            db.session, case_service._open_tasks_read()[0], {"task_id": "x"}).all())
    assert len(looked_up) >= 20, looked_up
    wrong = [(table, column, plan) for table, column, plan in looked_up
             if not any(line.startswith((f"SEARCH {table} ", f"SEARCH {table}_1 ")) and f"{column}=?" in line
                        for line in plan.splitlines())]
    assert not wrong, wrong
    assert "SEARCH task_roles USING INDEX sqlite_autoindex_task_roles_1 (task_id=?)" in read, read
    assert "SEARCH pending_timers USING INDEX ix_pending_timers_case_id (case_id=?)" in read, read


# -- councils' calendars ----------------------------------------------------------------------------

def test_each_reference_council_has_its_own_pathways_and_calendar(sqlite_app):
    from conftest import ROOT
    from service.demo import REFERENCE_COUNCILS, create_demo_users, create_reference_councils

    with sqlite_app.app_context():
        created = create_reference_councils(db.session, ROOT)
        create_demo_users(db.session)
        db.session.commit()
        countries = {council.key: council.country for council, _ in created}
        assert countries == {c.key: c.country for c in REFERENCE_COUNCILS}
        assert countries["carmarthenshire"] == "wales" and set(countries.values()) == {"wales", "england"}
        for council, result in created:
            assert result.processes and all(v.key.startswith(f"{council.key}_") for v in result.processes)
            calendar = tenancy.working_calendar(council)
            assert calendar.country == council.country
        regional = db.session.scalars(select(User).where(User.name == "regional.duty.worker")).one()
        assert len({m.council_id for m in db.session.scalars(select(Membership).where(
            Membership.user_id == regional.id))}) == 2


def test_working_days_follow_the_councils_country():
    from datetime import date

    from service.engine.calendar import WorkingCalendar

    wales, scotland = WorkingCalendar(country="wales"), WorkingCalendar(country="scotland")
    assert not wales.is_working_day(date(2027, 8, 30))  # the summer bank holiday of England and Wales
    assert scotland.is_working_day(date(2027, 8, 30)) and not scotland.is_working_day(date(2027, 8, 2))
    assert wales.is_working_day(date(2027, 1, 4)) and not scotland.is_working_day(date(2027, 1, 4))
    with pytest.raises(ValueError):
        WorkingCalendar(country="france")


def test_a_due_date_is_counted_in_the_councils_own_working_days(councils, frozen_clock):
    api, _ = councils
    assert api.patch("/council", json={"closure_days": ["2026-12-24"]}, as_="north-admin").status_code == 200
    north = api.post("/cases", json={"process": "test_review", "reference": "N-2", "data": {"needs": 3}}, as_="north-social_worker")
    south = api.post("/cases", json={"process": "test_review", "reference": "S-2", "data": {"needs": 3}}, as_="south-social_worker")
    north_due = {t["name"]: t["due_at"] for t in north.json["timers"]}
    south_due = {t["name"]: t["due_at"] for t in south.json["timers"]}
    # The 2-day reminder counts calendar days; the 5-working-day escalation skips north's closure day.
    assert [name for name in north_due if north_due[name] != south_due[name]] == ["Event_Escalate"], (north_due,
                                                                                                       south_due)


def test_a_reminder_never_reaches_someone_of_another_council_named_as_assignee(councils, frozen_clock):
    """A diagram's assignee is a name; the same name in another council is somebody else, told nothing."""
    api, _ = councils
    case = api.post("/cases", json={"process": "test_review", "reference": "SOUTH-2", "data": {"needs": 3}},
                    as_="south-social_worker").json
    with api.app.app_context(), everything():
        task = db.session.get(OpenTask, case["tasks"][0]["id"])
        north = db.session.scalars(select(User).where(User.name == "north-social_worker")).one()
        task.assignee_id = north.id  # a row naming someone of another council (a diagram's name never does)
        db.session.commit()
    frozen_clock.advance(days=2, minutes=1)
    assert scheduler.fire_due(api.app) == 1  # the task's reminder
    assert api.get("/notifications", as_="north-social_worker").json == []
    subjects = [n["subject"] for n in api.get("/notifications", as_="south-social_worker").json]
    assert any("SOUTH-2" in s for s in subjects)  # the council's own holders of the role are told instead


def test_workload_never_reaches_another_council(councils):
    api, south = councils
    assert api.get("/workload/waiting?role=social_worker", as_="south-team_manager").json["count"] == 1
    for role in ("team_manager", "admin"):  # south's task waits for a social worker: not in north's queue
        queue = api.get("/workload/waiting?role=social_worker", as_=f"north-{role}")
        assert queue.status_code == 200 and queue.json["count"] == 0 and "SOUTH" not in queue.get_data(as_text=True)
    claimed = api.post(f"/tasks/{south['task']}/claim", json={}, as_=south["worker"])  # south's worker holds it
    assert claimed.status_code == 200, claimed.json
    assert api.get(f"/workload/workers/{south['worker']}", as_="south-team_manager").json["count"] == 1
    for role in ("team_manager", "admin"):
        as_ = f"north-{role}"
        load = api.get("/workload", as_=as_)
        assert load.status_code == 200 and load.json["total"] == 0 and "SOUTH" not in load.get_data(as_text=True)
        pile = api.get(f"/workload/workers/{south['worker']}", as_=as_)
        assert pile.status_code == 404 and "SOUTH" not in pile.get_data(as_text=True)
        given = api.post("/workload/reassign", json={"tasks": [south["task"]], "assignee": as_}, as_=as_)
        assert given.status_code == 404 and "SOUTH" not in given.get_data(as_text=True)
    with api.app.app_context(), everything():
        assert db.session.get(OpenTask, south["task"]).assignee == south["worker"]
