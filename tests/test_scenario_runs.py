"""Scenario files deployed with a pathway: checked at deploy, versioned and diffed, run at every deploy and
publish (a failing one blocks publishing), on demand (API, CLI), and their results kept per step.

The small pathway tests/fixtures/sandbox/sandbox_visit.bpmn and its scenario; two councils: ``test`` (its
analysts publish directly) and ``strict`` (four eyes).
"""
from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from conftest import FIXTURES, Api, Browser, _council, everything, make_app, page_text, password_hash, save_user
from service.models import Case, Notification, OpenTask, PendingTimer, ScenarioRun, db

SANDBOX = FIXTURES / "sandbox"
BPMN = (SANDBOX / "sandbox_visit.bpmn").read_bytes()
SEEN_NAME = "sandbox_visit.seen.scenario.json"
SEEN = json.loads((SANDBOX / SEEN_NAME).read_text())
USERS = {"analyst": ["analyst"], "approver": ["pathway_approver"], "worker": ["social_worker"],
         "strict_analyst": ["analyst"], "strict_approver": ["pathway_approver"]}


@pytest.fixture
def api(database_url, frozen_clock):
    app = make_app(database_url)
    tokens = {}
    with app.app_context():
        _council(db.session, "strict", requires_approval=True)
        for name, roles in USERS.items():
            user, _ = save_user(db.session, name, roles, council="strict" if name.startswith("strict") else "test",
                                token=f"token-{name}")
            user.password_hash = password_hash(f"pw-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    yield Api(app, tokens)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def upload(api, files: dict[str, bytes], as_="analyst"):
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return api.post("/deployments", data=data, as_=as_, content_type="multipart/form-data")


def scenario(**changes) -> bytes:
    return json.dumps({**SEEN, **changes}).encode()


def failing() -> bytes:
    raw = json.loads(json.dumps(SEEN))
    raw["expect"]["outcome"] = "not_seen"
    return json.dumps(raw).encode()


def version_id(api, as_="analyst", number=1):
    return next(v["id"] for v in api.get("/versions?key=sandbox_visit", as_=as_).json if v["version"] == number)


# -- at deploy -----------------------------------------------------------------------------------------

def test_a_deploy_runs_the_scenarios_and_keeps_the_results_per_step(api):
    response = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: scenario()})
    assert response.status_code == 201, response.json
    found = api.get(f"/versions/{version_id(api)}/scenarios", as_="analyst").json
    assert found["passed"] is True
    [run] = found["scenarios"]
    assert (run["scenario"], run["trigger"], run["ran_by"]) == (SEEN_NAME, "publish", "analyst")
    assert [(s["number"], s["action"], s["passed"]) for s in run["steps"]] == [
        (0, "start as social_worker", True), (1, "clock to the next timer", True),
        (2, "complete Task_Visit as social_worker", True), (3, "at the end", True)]


@pytest.mark.parametrize("content, said", [
    (b"{", "not JSON"),
    (scenario(steps=[{"clock": "+1 day"}, {"complete": "Task_Visit", "colour": "red"}]),
     "step 2: unknown key 'colour'"),
    (scenario(steps=[{"clock": "soon"}]), "step 1: key 'clock'"),
])
def test_a_malformed_scenario_is_refused_at_deploy_naming_the_file_the_step_and_the_key(api, content, said):
    response = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: content})
    assert response.status_code == 400
    [problem] = response.json["errors"]
    assert problem["file"] == SEEN_NAME and said in problem["message"], problem
    assert api.get("/versions", as_="analyst").json == []  # nothing deployed


def test_a_scenario_of_a_process_the_deployment_does_not_define_is_refused(api):
    name = "other_process.seen.scenario.json"
    response = upload(api, {"sandbox_visit.bpmn": BPMN, name: scenario(process="other_process")})
    assert response.status_code == 400
    [problem] = response.json["errors"]
    assert problem["file"] == name and "'other_process', which this deployment does not define" in problem["message"]


def test_a_failing_scenario_refuses_a_deploy_that_would_publish_at_once(api):
    response = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: failing()})
    assert response.status_code == 400
    [problem] = response.json["errors"]
    assert problem["file"] == SEEN_NAME
    assert problem["message"] == "step 3 (at the end): expected the outcome 'not_seen', found 'seen'"
    assert api.get("/versions", as_="analyst").json == []
    assert api.post("/cases", json={"process": "sandbox_visit", "reference": "R1", "data": {"child_name": "A"}},
                    as_="worker").status_code == 404


def test_a_changed_scenario_makes_a_new_version_with_the_scenario_in_its_diff(api):
    assert upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: scenario()}).status_code == 201
    changed = scenario(scenario="Seen on the second day")
    response = upload(api, {SEEN_NAME: changed})
    assert response.status_code == 201, response.json
    assert [(p["key"], p["version"]) for p in response.json["processes"]] == [("sandbox_visit", 2)]
    diff = api.get(f"/versions/{version_id(api, number=2)}/diff", as_="analyst").json
    assert diff["files"]["changed"] == [SEEN_NAME]
    [change] = diff["changed"]
    assert (change["id"], change["type"], change["file"]) == (f"scenario:{SEEN_NAME}", "scenario", SEEN_NAME)
    assert change["attributes"] == {"scenario": [SEEN["scenario"], "Seen on the second day"]}
    assert upload(api, {"sandbox_visit.bpmn": BPMN}).json["processes"][0]["version"] == 2  # nothing changed


# -- at publish (four eyes) -----------------------------------------------------------------------------

def test_a_failing_scenario_blocks_publishing_with_the_scenario_step_and_what_differed(api):
    draft = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: failing()}, as_="strict_analyst")
    assert draft.status_code == 201 and draft.json["status"] == "draft"  # a draft may fail: the approver sees it
    vid = version_id(api, as_="strict_analyst")
    shown = api.get(f"/versions/{vid}/scenarios", as_="strict_approver").json
    assert shown["passed"] is False and shown["scenarios"][0]["trigger"] == "deploy"
    refused = api.post(f"/deployments/{draft.json['id']}/publish", json={}, as_="strict_approver")
    assert refused.status_code == 409
    assert refused.json["failures"] == [
        f"{SEEN_NAME}, step 3 (at the end): expected the outcome 'not_seen', found 'seen'"]
    assert "publishing was refused" in refused.json["message"]
    assert api.get(f"/versions/{vid}", as_="strict_approver").json["status"] == "draft"


def test_a_passing_scenario_lets_the_approver_publish_and_the_run_is_kept(api):
    draft = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: scenario()}, as_="strict_analyst")
    done = api.post(f"/deployments/{draft.json['id']}/publish", json={}, as_="strict_approver")
    assert done.status_code == 200, done.json
    [run] = api.get(f"/versions/{version_id(api, as_='strict_analyst')}/scenarios", as_="strict_analyst").json[
        "scenarios"]
    assert (run["trigger"], run["ran_by"], run["passed"]) == ("publish", "strict_approver", True)


# -- on demand ----------------------------------------------------------------------------------------

def test_scenarios_run_on_demand_by_analysts_and_approvers_only_and_touch_no_case(api):
    assert upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: scenario()}).status_code == 201
    vid = version_id(api)
    with api.app.app_context(), everything():
        before = [db.session.scalar(select(func.count()).select_from(t))
                  for t in (Case, OpenTask, PendingTimer, Notification)]
    ran = api.post(f"/versions/{vid}/scenarios/run", as_="analyst")
    assert ran.status_code == 200, ran.json
    assert ran.json["passed"] is True and ran.json["scenarios"][0]["steps"][1]["passed"] is True
    by_number = api.post("/processes/sandbox_visit/versions/1/scenarios/run", as_="analyst")
    assert by_number.status_code == 200 and by_number.json["version_id"] == vid
    assert api.post(f"/versions/{vid}/scenarios/run", as_="worker").status_code == 403
    with api.app.app_context(), everything():
        after = [db.session.scalar(select(func.count()).select_from(t))
                 for t in (Case, OpenTask, PendingTimer, Notification)]
        runs = db.session.scalar(select(func.count()).select_from(ScenarioRun))
    assert after == before and runs == 3
    latest = api.get(f"/versions/{vid}/scenarios", as_="analyst").json["scenarios"]
    assert [r["trigger"] for r in latest] == ["on_demand"]  # the newest run of each scenario


def test_the_cli_runs_a_pathway_s_scenarios(api):
    assert upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: scenario()}).status_code == 201
    runner = api.app.test_cli_runner()
    result = runner.invoke(args=["scenarios", "run", "test", "sandbox_visit"])
    assert result.exit_code == 0, result.output
    assert f"PASS {SEEN_NAME}" in result.output and "step 2 (complete Task_Visit as social_worker): passed" \
        in result.output
    missing = runner.invoke(args=["scenarios", "run", "test", "nope"])
    assert missing.exit_code != 0 and "nope" in missing.output


# -- the pages ----------------------------------------------------------------------------------------

def test_the_version_page_shows_each_scenario_s_steps_and_runs_them_on_demand(api):
    draft = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: failing()}, as_="strict_analyst")
    vid = version_id(api, as_="strict_analyst")
    browser = Browser(api.app)
    browser.sign_in("strict_approver")  # the approver reads the results before publishing
    text = page_text(browser.get(f"/analyst/versions/{vid}"))
    assert "Scenarios" in text and SEEN["scenario"] in text and "Failed" in text
    assert "2 complete Task_Visit as social_worker Passed" in text
    assert "3 at the end Failed: expected the outcome 'not_seen', found 'seen'" in text
    assert f"{SEEN_NAME} Scenario test" in text  # downloadable with the version's files
    response = browser.post(f"/analyst/versions/{vid}/scenarios/run")
    assert response.status_code == 302 and response.headers["Location"].endswith("#scenarios")
    assert "1 scenario test ran: 1 failed" in page_text(browser.get(f"/analyst/versions/{vid}"))
    changes = api.get(f"/deployments/{draft.json['id']}/changes", as_="strict_approver").json
    assert [(s["scenario"], s["passed"], s["trigger"]) for s in changes[0]["scenarios"]] == [
        (SEEN_NAME, False, "on_demand")]


def test_scenarios_count_working_days_in_the_deploying_council_s_calendar(api):
    with api.app.app_context():
        _council(db.session, "closed", requires_approval=False, closure_days=["2027-01-06"])
        save_user(db.session, "closed_analyst", ["analyst"], council="closed", token="token-closed_analyst")
        db.session.commit()
    api.tokens["closed_analyst"] = "token-closed_analyst"
    raw = json.loads(json.dumps(SEEN))
    raw["start"]["expect"]["timers"]["Event_Late"] = "2027-01-12T09:00:00+00:00"  # Wednesday 6th: closed
    assert upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: json.dumps(raw).encode()},
                  as_="closed_analyst").status_code == 201
    refused = upload(api, {"sandbox_visit.bpmn": BPMN, SEEN_NAME: json.dumps(raw).encode()})  # council "test"
    assert refused.status_code == 400
    assert "expected the timer Event_Late due at 2027-01-12T09:00:00+00:00, found due at 2027-01-11T09:00:00+00:00" \
        in refused.json["errors"][0]["message"]
