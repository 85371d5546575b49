"""Moving running cases from one version of a pathway to another (issue 17, item 7), through the API.

Version 1 is tests/fixtures/pathways/review.bpmn; version 2 the same diagram with the manager's approval
renamed (``Task_Approve`` becomes ``Task_SignOff``, "Sign off the step up"). A case waiting on the
assessment (kept) moves and then follows version 2's path; a case waiting on the approval (removed) cannot
move unless the analyst maps it to the sign-off.
"""
from __future__ import annotations

import base64
import html
import io
import re

import pytest
from sqlalchemy import select

from conftest import FIXTURES, everything
from service.models import AuditEvent, Case, OpenTask, db

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_text()
DMN = (PATHWAY / "test_level.dmn").read_bytes()
V2 = REVIEW.replace("Task_Approve", "Task_SignOff").replace('name="Approve the step up"',
                                                             'name="Sign off the step up"')


def deploy(api, bpmn: str):
    files = [(io.BytesIO(bpmn.encode()), "review.bpmn"), (io.BytesIO(DMN), "test_level.dmn")]
    response = api.post("/deployments", data={"files": files}, as_="analyst", content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    [number] = [p["version"] for p in response.json["processes"] if p["key"] == "test_review"]
    return version_id(api, "test_review", number)


def version_id(api, key, number):
    return next(v["id"] for v in api.get(f"/versions?key={key}", as_="analyst").json if v["version"] == number)


def start(api, reference, risk=None):
    """A case of the current version, waiting on the assessment, or (``risk`` given) past it."""
    case = api.post("/cases", json={"process": "test_review", "reference": reference, "data": {"needs": 1}}).json
    if risk is not None:
        task = case["tasks"][0]
        case = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": risk}}).json
    return case


def stored(api, case_id):
    with api.app.app_context(), everything():
        case = db.session.get(Case, case_id)
        tasks = sorted((t.id, t.name, t.title) for t in db.session.scalars(
            select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.closed_at.is_(None))))
        return case.state, case.process_version_id, tasks, [e.event for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id))]


@pytest.fixture
def two_versions(api, frozen_clock):
    """Three cases of version 1: at the assessment, at the approval, waiting for a family update; then v2."""
    v1 = deploy(api, REVIEW)
    assessing = start(api, "R-ASSESS")
    approving = start(api, "R-APPROVE", risk=True)
    waiting = start(api, "R-WAIT", risk=False)
    assert [t["name"] for t in approving["tasks"]] == ["Task_Approve"]
    assert waiting["tasks"] == [] and waiting["status"] == "active"
    v2 = deploy(api, V2)
    return v1, v2, {"assessing": assessing["id"], "approving": approving["id"], "waiting": waiting["id"]}


def by_case(answer):
    return {row["case_id"]: row for row in answer["cases"]}


def test_the_precheck_says_which_cases_can_move_and_what_they_miss(api, two_versions):
    v1, v2, cases = two_versions
    response = api.get(f"/versions/{v1}/migration?to={v2}", as_="analyst")
    assert response.status_code == 200, response.json
    rows = by_case(response.json)
    assert rows[cases["assessing"]]["status"] == "would_move"
    assert "Task_Assess" in rows[cases["assessing"]]["waiting"]
    assert rows[cases["waiting"]]["status"] == "would_move"
    assert "Event_WaitUpdate" in rows[cases["waiting"]]["waiting"]
    assert "Event_ImmediateRisk" in rows[cases["waiting"]]["waiting"]  # the event sub-process may still start
    blocked = rows[cases["approving"]]
    assert blocked["status"] == "cannot_move" and blocked["missing"] == ["Task_Approve"]
    assert "Task_Approve" in blocked["reason"]
    assert rows[cases["assessing"]]["reference"] == "R-ASSESS"
    mapped = api.get(f"/versions/{v1}/migration?to={v2}&map=Task_Approve:Task_SignOff", as_="analyst")
    assert by_case(mapped.json)[cases["approving"]]["status"] == "would_move"
    assert api.get(f"/versions/{v1}/migration?to={v2}&map=Task_Approve", as_="analyst").status_code == 422


def test_a_dry_run_changes_nothing(api, two_versions):
    v1, v2, cases = two_versions
    before = {name: stored(api, case_id) for name, case_id in cases.items()}
    response = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": True,
                                                           "mapping": {"Task_Approve": "Task_SignOff"}}, as_="analyst")
    assert response.status_code == 200, response.json
    assert {row["status"] for row in response.json["cases"]} == {"would_move"}
    assert {name: stored(api, case_id) for name, case_id in cases.items()} == before


def timers_of(api, case_id):
    case = api.get(f"/cases/{case_id}").json
    return sorted((t["name"], t["due_at"]) for t in case["timers"]), [(t["id"], t["due_at"]) for t in case["tasks"]]


def test_cases_move_and_follow_the_new_versions_path_and_the_blocked_one_stays(api, two_versions, frozen_clock):
    v1, v2, cases = two_versions
    timers_before = timers_of(api, cases["assessing"])
    assert {name for name, _ in timers_before[0]} == {"Event_RemindWorker", "Event_Escalate"}
    frozen_clock.advance(days=1)  # a timer or due date restarted by the move would now fall a day later
    blocked_before = stored(api, cases["approving"])
    response = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False}, as_="analyst")
    assert response.status_code == 200, response.json
    rows = by_case(response.json)
    assert rows[cases["assessing"]]["status"] == "moved"
    assert rows[cases["waiting"]]["status"] == "moved"
    assert rows[cases["approving"]]["status"] == "cannot_move"
    assert stored(api, cases["approving"]) == blocked_before  # byte for byte, on version 1

    _, version, _, events = stored(api, cases["assessing"])
    assert timers_of(api, cases["assessing"]) == timers_before  # due when they were, not restarted from now
    assert version == v2 and events[-1] == "case_migrated"
    with api.app.app_context(), everything():
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == cases["assessing"],
                                                            AuditEvent.event == "case_migrated")).one()
        assert (audit.detail["from_version_id"], audit.detail["to_version_id"]) == (v1, v2)
        assert audit.detail["mapping"] == {} and audit.actor == "analyst"
    case = api.get(f"/cases/{cases['assessing']}").json
    [task] = case["tasks"]
    assert task["name"] == "Task_Assess"
    done = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}})
    assert done.status_code == 200, done.json
    assert [t["name"] for t in done.json["tasks"]] == ["Task_SignOff"]  # version 2's element
    signed = api.post(f"/tasks/{done.json['tasks'][0]['id']}/complete", json={"data": {}}, as_="manager")
    assert signed.status_code == 200, signed.json
    assert signed.json["status"] == "completed" and signed.json["outcome"] == "stepped_up"

    moved = api.post(f"/cases/{cases['waiting']}/messages", json={"name": "family_update", "data": {}})
    assert moved.status_code == 200, moved.json
    assert moved.json["status"] == "completed" and moved.json["outcome"] == "closed"


def test_a_mapping_moves_a_case_whose_element_was_removed(api, two_versions):
    v1, v2, cases = two_versions
    [(old_task, _, _)] = stored(api, cases["approving"])[2]
    response = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False, "cases": [cases["approving"]],
                                                           "mapping": {"Task_Approve": "Task_SignOff"}}, as_="analyst")
    assert response.status_code == 200, response.json
    [row] = response.json["cases"]
    assert row["status"] == "moved", row
    _, version, tasks, _ = stored(api, cases["approving"])
    assert version == v2
    assert tasks == [(old_task, "Task_SignOff", "Sign off the step up")]  # the same task, now the mapped element
    assert stored(api, cases["assessing"])[1] == v1  # only the cases named
    done = api.post(f"/tasks/{old_task}/complete", json={"data": {}}, as_="manager")
    assert done.status_code == 200, done.json
    assert done.json["outcome"] == "stepped_up"
    with api.app.app_context(), everything():
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == cases["approving"],
                                                            AuditEvent.event == "case_migrated")).one()
        assert audit.detail["mapping"] == {"Task_Approve": "Task_SignOff"}


def test_only_analysts_approvers_and_the_admin_may_move_cases(api, two_versions):
    v1, v2, _ = two_versions
    for name in ("worker", "manager", "front"):
        assert api.get(f"/versions/{v1}/migration?to={v2}", as_=name).status_code == 403, name
        refused = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False}, as_=name)
        assert refused.status_code == 403 and "analyst" in refused.json["message"], name
    approver = api.as_role("pathway_approver")
    assert api.get(f"/versions/{v1}/migration?to={v2}", as_=approver).status_code == 200
    assert api.get(f"/versions/{v1}/migration?to={v2}", as_="admin").status_code == 200


def test_bad_input_is_refused_naming_what_is_wrong(api, two_versions):
    v1, v2, _ = two_versions

    def post(body, version=v1):
        return api.post(f"/versions/{version}/migration", json=body, as_="analyst")

    assert post({"to": v1}).status_code == 422 and "already" in post({"to": v1}).json["message"]
    missing = post({"to": 999999})
    assert missing.status_code == 404 and "999999" in missing.json["message"]
    assert api.post("/versions/999999/migration", json={"to": v2}, as_="analyst").status_code == 404
    assert post({}).status_code == 422
    assert api.get(f"/versions/{v1}/migration", as_="analyst").status_code == 422
    wrong = post({"to": v2, "mapping": {"Task_Approve": "Task_Nowhere"}})
    assert wrong.status_code == 422 and "Task_Nowhere" in wrong.json["message"]
    unknown_case = post({"to": v2, "cases": [999999]})
    assert unknown_case.status_code == 404 and "999999" in unknown_case.json["message"]


def test_only_versions_of_one_pathway_that_were_published(api, two_versions):
    v1, v2, _ = two_versions
    other = REVIEW.replace('id="test_review"', 'id="test_other"').replace('processRef="test_review"',
                                                                          'processRef="test_other"')
    files = [(io.BytesIO(other.encode()), "other.bpmn")]
    deployed = api.post("/deployments", data={"files": files}, as_="analyst", content_type="multipart/form-data")
    assert deployed.status_code == 201, deployed.json
    other_id = version_id(api, "test_other", 1)
    refused = api.post(f"/versions/{v1}/migration", json={"to": other_id}, as_="analyst")
    assert refused.status_code == 422 and "test_other" in refused.json["message"]
    with api.app.app_context(), everything():
        from service.models import ProcessVersion

        db.session.get(ProcessVersion, v2).status = "draft"
        db.session.commit()
    draft = api.post(f"/versions/{v1}/migration", json={"to": v2}, as_="analyst")
    assert draft.status_code == 422 and "draft" in draft.json["message"]


def test_a_case_that_fails_to_move_is_left_as_it_was_and_the_others_move(api, two_versions, monkeypatch):
    v1, v2, cases = two_versions
    from service import case_migration

    rename = case_migration._rename_rows

    def failing(session, case, snap):
        rename(session, case, snap)
        if case.id == cases["assessing"]:
            raise RuntimeError("the disk is full")

    monkeypatch.setattr(case_migration, "_rename_rows", failing)
    before = stored(api, cases["assessing"])
    response = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False}, as_="analyst")
    assert response.status_code == 200, response.json
    rows = by_case(response.json)
    assert rows[cases["assessing"]]["status"] == "failed" and "disk" in rows[cases["assessing"]]["reason"]
    assert rows[cases["waiting"]]["status"] == "moved"
    assert stored(api, cases["assessing"]) == before
    assert stored(api, cases["waiting"])[1] == v2


def test_a_case_inside_the_immediate_risk_event_sub_process_moves_with_its_urgent_task(api, two_versions):
    v1, v2, cases = two_versions
    risk = api.post(f"/cases/{cases['waiting']}/messages",
                    json={"name": "immediate_risk", "data": {"what_happened": "A disclosure at school"}}).json
    [urgent] = risk["tasks"]
    assert urgent["name"] == "Task_UrgentReferral"
    timers = [(t["name"], t["due_at"]) for t in risk["timers"]]
    response = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False, "cases": [cases["waiting"]]},
                        as_="analyst")
    [row] = response.json["cases"]
    assert row["status"] == "moved" and "Task_UrgentReferral" in row["waiting"], row
    case = api.get(f"/cases/{cases['waiting']}").json
    assert [(t["id"], t["due_at"]) for t in case["tasks"]] == [(urgent["id"], urgent["due_at"])]
    assert [(t["name"], t["due_at"]) for t in case["timers"]] == timers  # the service's escalation stays
    done = api.post(f"/tasks/{urgent['id']}/complete", json={"data": {}}, as_="front").json
    assert done["status"] == "completed", done.get("error")
    assert done["data"]["outcome"] == "safeguarding_referral"


def test_the_page_checks_with_a_mapping_then_moves_and_a_worker_is_refused(api, two_versions):
    from conftest import Browser, page_text

    v1, v2, cases = two_versions
    browser = Browser(api.app)
    browser.sign_in("analyst", "password-analyst")
    assert f"/analyst/versions/{v1}/migration" in browser.get(f"/analyst/versions/{v1}").get_data(as_text=True)
    page = browser.get(f"/analyst/versions/{v1}/migration?to={v2}&mapping=Task_Approve+%3D+Task_SignOff")
    assert page.status_code == 200
    text = page_text(page)
    assert "What would happen" in text and "Cannot move" not in text and text.count("Can move") == 3
    assert stored(api, cases["approving"])[1] == v1  # the check moves nothing
    moved = browser.post(f"/analyst/versions/{v1}/migration", {"to": str(v2), "action": "move",
                                                                "mapping": "Task_Approve = Task_SignOff"})
    assert moved.status_code == 200 and page_text(moved).count("Moved") == 3
    assert {stored(api, case_id)[1] for case_id in cases.values()} == {v2}
    bad = browser.get(f"/analyst/versions/{v2}/migration?to={v1}&mapping=nonsense")
    assert bad.status_code == 200 and "old_id = new_id" in page_text(bad)
    worker = Browser(api.app)
    worker.sign_in("worker", "password-worker")
    assert worker.get(f"/analyst/versions/{v1}/migration?to={v2}").status_code == 403


def test_a_case_whose_state_cannot_be_read_fails_alone(api, two_versions, monkeypatch):
    v1, v2, cases = two_versions
    from service.engine import runtime

    load, calls = runtime.load, []

    def unreadable_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the cases are taken in order of id: the assessing case first
            raise ValueError("garbled")
        return load(*args, **kwargs)

    monkeypatch.setattr(runtime, "load", unreadable_first)
    before = stored(api, cases["assessing"])
    response = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False}, as_="analyst")
    assert response.status_code == 200, response.json
    rows = by_case(response.json)
    assert rows[cases["assessing"]]["status"] == "failed"
    assert rows[cases["waiting"]]["status"] == "moved"
    assert stored(api, cases["assessing"]) == before


def test_cases_are_checked_and_moved_a_page_at_a_time(api, two_versions, monkeypatch):
    """A version may have tens of thousands of running cases: each check or move takes a page of them, in order of
    id, and says where the next page starts."""
    from service import case_migration

    monkeypatch.setattr(case_migration, "MIGRATION_PAGE", 2)
    v1, v2, cases = two_versions
    in_order = sorted(cases.values())
    first = api.get(f"/versions/{v1}/migration?to={v2}", as_="analyst")
    assert first.status_code == 200, first.json
    assert [row["case_id"] for row in first.json["cases"]] == in_order[:2]
    assert first.json["next"] and first.headers["X-Next-Cursor"] == first.json["next"]
    second = api.get(f"/versions/{v1}/migration?to={v2}&after={first.json['next']}", as_="analyst")
    assert [row["case_id"] for row in second.json["cases"]] == in_order[2:]
    assert second.json["next"] is None and "X-Next-Cursor" not in second.headers

    mapping = {"Task_Approve": "Task_SignOff"}
    moved = api.post(f"/versions/{v1}/migration", json={"to": v2, "mapping": mapping, "dry_run": False},
                     as_="analyst")
    assert [(row["case_id"], row["status"]) for row in moved.json["cases"]] == [(i, "moved") for i in in_order[:2]]
    assert stored(api, in_order[2])[1] == v1  # the next page's case is not touched yet
    rest = api.post(f"/versions/{v1}/migration", json={"to": v2, "mapping": mapping, "dry_run": False,
                                                       "after": moved.json["next"]}, as_="analyst")
    assert [(row["case_id"], row["status"]) for row in rest.json["cases"]] == [(in_order[2], "moved")]
    assert {stored(api, case_id)[1] for case_id in cases.values()} == {v2}


def test_a_page_is_asked_for_by_a_cursor_of_its_own_or_by_a_page_of_case_ids(api, two_versions, monkeypatch):
    from service import case_migration

    monkeypatch.setattr(case_migration, "MIGRATION_PAGE", 2)
    v1, v2, cases = two_versions
    before = {name: stored(api, case_id) for name, case_id in cases.items()}
    huge = base64.urlsafe_b64encode(b"[100000000000000000000000]").decode()
    for cursor in ("nonsense", "WyJ4Il0", huge, "x" * 401):  # not base64 JSON; ["x"]; past any id; too long
        refused = api.get(f"/versions/{v1}/migration?to={v2}&after={cursor}", as_="analyst")
        assert refused.status_code == 422 and "after" in refused.json["errors"], cursor
    too_many = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False,
                                                           "cases": sorted(cases.values())}, as_="analyst")
    assert too_many.status_code == 422 and "at most 2" in too_many.json["errors"]["cases"]
    both = api.post(f"/versions/{v1}/migration", json={"to": v2, "dry_run": False, "cases": [cases["assessing"]],
                                                       "after": "WzFd"}, as_="analyst")
    assert both.status_code == 422 and "after" in both.json["errors"]
    assert {name: stored(api, case_id) for name, case_id in cases.items()} == before


def test_the_page_checks_and_moves_a_page_of_cases_then_links_to_the_next(api, two_versions, monkeypatch):
    """Without a mapping the approving case cannot move: it stays on the first page, and the next page's move
    takes the next page's cases, not the first page's again."""
    from conftest import Browser, page_text
    from service import case_migration

    monkeypatch.setattr(case_migration, "MIGRATION_PAGE", 2)
    v1, v2, cases = two_versions
    browser = Browser(api.app)
    browser.sign_in("analyst", "password-analyst")
    page = page_text(browser.get(f"/analyst/versions/{v1}/migration?to={v2}"))
    assert "The first 2 active cases" in page and page.count("Can move") == 1 and page.count("Cannot move") == 1
    moved = browser.post(f"/analyst/versions/{v1}/migration", {"to": str(v2), "action": "move", "mapping": ""})
    assert page_text(moved).count("Moved") == 1 and "Check the next 2 cases" in page_text(moved)
    assert [stored(api, cases[name])[1] for name in ("assessing", "approving", "waiting")] == [v2, v1, v1]
    following = re.search(r'href="([^"]*after=[^"]*)">Check the next 2 cases', moved.get_data(as_text=True))
    nxt = browser.get(html.unescape(following[1]))
    text = page_text(nxt)
    assert "The next 1 active case" in text and text.count("Can move") == 1 and "Cannot move" not in text
    assert "Check the next" not in text
    after = re.search(r'name="after" value="([^"]+)"', nxt.get_data(as_text=True))[1]
    last = browser.post(f"/analyst/versions/{v1}/migration", {"to": str(v2), "action": "move", "mapping": "",
                                                               "after": after})
    assert page_text(last).count("Moved") == 1 and "Cannot move" not in page_text(last)
    assert [stored(api, cases[name])[1] for name in ("assessing", "approving", "waiting")] == [v2, v1, v2]
    beyond = page_text(browser.get(f"/analyst/versions/{v1}/migration?to={v2}&after={html.unescape(after)}"))
    assert "no more active cases after those checked" in beyond and "has no active case" not in beyond
