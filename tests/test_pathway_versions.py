"""Drafts, four-eyes publishing, suspend, retire, removing and renaming files, and the version diff, through the API.

The council here requires approval (a real council's default): an analyst's upload is a draft until a
pathway approver who is not its author publishes it (issue 17, item 4).
"""
from __future__ import annotations

import io

import pytest

from conftest import FIXTURES, Api, _council, make_app, save_user
from service.models import db

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_bytes()
DMN = (PATHWAY / "test_level.dmn").read_bytes()
COUNCIL = "strict"
USERS = {"analyst": ["analyst"], "analyst2": ["analyst"], "approver": ["pathway_approver"],
         "both": ["analyst", "pathway_approver"], "worker": ["social_worker"], "front": ["front_door"],
         "manager": ["team_manager"], "admin": ["admin"]}


@pytest.fixture
def api(database_url, frozen_clock):
    app = make_app(database_url)
    tokens = {}
    with app.app_context():
        _council(db.session, COUNCIL, requires_approval=True)
        for name, roles in USERS.items():
            save_user(db.session, name, roles, council=COUNCIL, token=f"token-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    yield Api(app, tokens)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def upload(api, files: dict[str, bytes], as_="analyst", **form):
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()], **form}
    return api.post("/deployments", data=data, as_=as_, content_type="multipart/form-data")


def start(api, reference="R1", as_="worker"):
    return api.post("/cases", json={"process": "test_review", "reference": reference, "data": {"needs": 1}}, as_=as_)


def published(api, files=None, author="analyst", approver="approver"):
    response = upload(api, files or {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_=author)
    assert response.status_code == 201, response.json
    done = api.post(f"/deployments/{response.json['id']}/publish", json={"reason": "checked"}, as_=approver)
    assert done.status_code == 200, done.json
    return response.json


def version_id(api, key="test_review", number=1):
    return next(v["id"] for v in api.get(f"/versions?key={key}", as_="analyst").json if v["version"] == number)


def test_an_upload_is_a_draft_that_starts_no_case(api):
    draft = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN})
    assert draft.status_code == 201
    assert draft.json["status"] == "draft"
    assert [(p["key"], p["version"], p["status"]) for p in draft.json["processes"]] == [("test_review", 1, "draft")]
    assert start(api).status_code == 404  # nothing published yet
    assert api.get("/processes", as_="worker").json == []
    [version] = api.get("/versions", as_="analyst").json
    assert (version["status"], version["current"], version["starts_new_cases"]) == ("draft", False, False)
    assert version["deployed_by"] == "analyst"


def test_four_eyes_the_author_and_non_approvers_cannot_publish(api):
    draft = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="both").json
    own = api.post(f"/deployments/{draft['id']}/publish", json={}, as_="both")
    assert own.status_code == 403 and "four eyes" in own.json["message"]
    for name in ("analyst", "analyst2", "worker", "manager"):
        refused = api.post(f"/deployments/{draft['id']}/publish", json={}, as_=name)
        assert refused.status_code == 403, name
        assert "pathway_approver" in refused.json["message"]
    assert start(api).status_code == 404
    done = api.post(f"/deployments/{draft['id']}/publish", json={"reason": "read the diff"}, as_="approver")
    assert done.status_code == 200 and done.json["status"] == "published" and done.json["decided_by"] == "approver"
    case = start(api)
    assert case.status_code == 201 and case.json["version"] == 1
    history = api.get(f"/deployments/{draft['id']}", as_="analyst").json["history"]
    assert [(e["event"], e["actor"], e["to_status"]) for e in history if e["key"] is None] == [
        ("deployed", "both", "draft"), ("published", "approver", "published")]
    assert any(e["event"] == "published" and e["key"] == "test_review" and e["reason"] == "read the diff"
               for e in history)


def test_submit_then_reject_with_a_reason(api):
    draft = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}).json
    submitted = api.post(f"/deployments/{draft['id']}/submit", json={"reason": "ready"}, as_="analyst")
    assert submitted.status_code == 200 and submitted.json["status"] == "submitted"
    assert [d["id"] for d in api.get("/deployments?status=submitted", as_="approver").json] == [draft["id"]]
    assert api.post(f"/deployments/{draft['id']}/reject", json={}, as_="approver").status_code == 422
    assert api.post(f"/deployments/{draft['id']}/reject", json={"reason": "no"}, as_="analyst2").status_code == 403
    rejected = api.post(f"/deployments/{draft['id']}/reject", json={"reason": "the threshold is wrong"},
                        as_="approver")
    assert rejected.status_code == 200 and rejected.json["versions"][0]["status"] == "rejected"
    assert api.post(f"/deployments/{draft['id']}/publish", json={}, as_="approver").status_code == 409
    assert start(api).status_code == 404
    # The next upload (changed) is laid over what was published (nothing), not over the rejected one.
    again = upload(api, {"review.bpmn": REVIEW.replace(b"Assess the family", b"Assess the child"),
                         "test_level.dmn": DMN}).json
    assert again["processes"][0]["version"] == 2 and again["processes"][0]["status"] == "draft"


def test_a_council_can_let_its_analysts_publish_directly(api):
    assert api.patch("/council", json={"requires_approval": False}, as_="admin").status_code == 200
    direct = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN})
    assert direct.json["status"] == "published"
    assert start(api).status_code == 201


def test_a_suspended_version_starts_no_case_and_running_ones_go_on(api):
    published(api)
    running = start(api, "RUNNING").json
    vid = version_id(api)
    assert api.post(f"/versions/{vid}/suspend", json={}, as_="analyst").status_code == 422  # a reason is needed
    assert api.post(f"/versions/{vid}/suspend", json={"reason": "x"}, as_="worker").status_code == 403
    suspended = api.post(f"/versions/{vid}/suspend", json={"reason": "threshold under review"}, as_="analyst")
    assert suspended.status_code == 200 and suspended.json["status"] == "suspended"
    refused = start(api, "NEW")
    assert refused.status_code == 409 and "suspended" in refused.json["message"]
    assert "test_review" not in [p["key"] for p in api.get("/processes", as_="worker").json]
    assert api.get("/processes/test_review", as_="worker").json["status"] == "suspended"
    done = api.post(f"/tasks/{running['tasks'][0]['id']}/complete", json={"data": {"risk": False}}, as_="worker")
    assert done.status_code == 200 and done.json["status"] == "active"
    assert api.post(f"/versions/{vid}/resume", json={}, as_="analyst").status_code == 403  # an approver's
    assert api.post(f"/versions/{vid}/resume", json={"reason": "fixed"}, as_="approver").json["status"] == "published"
    assert start(api, "AFTER").status_code == 201


def test_a_retired_version_keeps_its_running_cases(api):
    published(api)
    running = start(api, "RUNNING").json
    vid = version_id(api)
    assert api.post(f"/versions/{vid}/retire", json={"reason": "replaced"}, as_="analyst").status_code == 403
    retired = api.post(f"/versions/{vid}/retire", json={"reason": "replaced by the new front door"}, as_="approver")
    assert retired.status_code == 200 and retired.json["status"] == "retired"
    assert start(api, "NEW").status_code == 409
    done = api.post(f"/tasks/{running['tasks'][0]['id']}/complete", json={"data": {"risk": False}}, as_="worker")
    assert done.status_code == 200 and done.json["version"] == 1
    assert api.post(f"/versions/{vid}/resume", json={"reason": "x"}, as_="approver").status_code == 409
    # A new version published later is the current one again.
    published(api, {"review.bpmn": REVIEW.replace(b"Assess the family", b"Assess the child")})
    assert start(api, "LATER").json["version"] == 2


def test_only_the_current_version_is_suspended(api):
    published(api)
    published(api, {"review.bpmn": REVIEW.replace(b"Assess the family", b"Assess the child")})
    old = api.post(f"/versions/{version_id(api, number=1)}/suspend", json={"reason": "x"}, as_="analyst")
    assert old.status_code == 409 and "current version" in old.json["message"]
    versions = {v["version"]: v for v in api.get("/versions?key=test_review", as_="approver").json}
    assert versions[1]["superseded"] and versions[2]["starts_new_cases"]


def test_a_file_renamed_keeps_its_process_id(api):
    published(api)
    case = start(api, "BEFORE").json
    renamed = upload(api, {"review_v2.bpmn": REVIEW})
    assert renamed.status_code == 201, renamed.json  # was: "the process id 'test_review' is already used"
    assert renamed.json["replaced"] == {"review.bpmn": "review_v2.bpmn"}
    assert any(w["file"] == "review.bpmn" and "replaced by review_v2.bpmn" in w["message"]
               for w in renamed.json["warnings"])
    deployment = api.get(f"/deployments/{renamed.json['id']}", as_="analyst").json
    assert deployment["files"] == ["review_v2.bpmn", "test_level.dmn"]
    assert api.post(f"/deployments/{renamed.json['id']}/publish", json={}, as_="approver").status_code == 200
    assert start(api, "AFTER").json["version"] == 2
    assert api.get(f"/cases/{case['id']}", as_="worker").json["version"] == 1


def test_files_can_be_removed_and_a_removed_pathway_is_retired_on_publish(api):
    published(api)
    assert upload(api, {}, remove="nothing.bpmn").status_code == 400
    removal = upload(api, {}, remove="review.bpmn")
    assert removal.status_code == 201, removal.json
    assert removal.json["removed"] == ["review.bpmn"]
    assert start(api).status_code == 201  # a draft changes nothing yet
    assert api.post(f"/deployments/{removal.json['id']}/publish", json={"reason": "not used"},
                    as_="approver").status_code == 200
    [version] = api.get("/versions?key=test_review", as_="analyst").json
    assert version["status"] == "retired"
    assert start(api, "AFTER").status_code == 409


def test_a_full_set_takes_away_every_file_not_uploaded(api):
    published(api)
    extra = upload(api, {"review_copy.bpmn": REVIEW.replace(b'id="test_review"', b'id="test_review_b"')
                         .replace(b'processRef="test_review"', b'processRef="test_review_b"')})
    assert extra.status_code == 201, extra.json
    full = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, full_set="true")
    assert full.status_code == 201 and full.json["removed"] == ["review_copy.bpmn"]


def test_the_diff_between_versions(api):
    published(api)
    changed = REVIEW.replace(b'name="Assess the family"', b'name="Assess the child"') \
                    .replace(b'<bpmn:documentation>Thresholds.</bpmn:documentation>', b'')
    draft = upload(api, {"review.bpmn": changed}).json
    [change] = api.get(f"/deployments/{draft['id']}/changes", as_="approver").json
    assert (change["key"], change["version"], change["compared_with"]) == ("test_review", 2, 1)
    diff = change["diff"]
    by_id = {c["id"]: c for c in diff["changed"]}
    assert by_id["Task_Assess"]["attributes"]["name"] == ["Assess the family", "Assess the child"]
    assert by_id["Task_Level"]["attributes"]["documentation"] == ["Thresholds.", None]
    assert diff["added"] == [] and diff["removed"] == [] and diff["files"]["changed"] == ["review.bpmn"]
    v2 = version_id(api, number=2)
    assert api.get(f"/versions/{v2}/diff", as_="analyst").json["changed"] == diff["changed"]
    assert api.get(f"/versions/{v2}/diff", as_="worker").status_code == 403


def test_a_copy_of_another_councils_pathway_is_a_draft_too(api):
    with api.app.app_context():
        save_user(db.session, "elsewhere", ["analyst"], council="test", token="token-elsewhere")  # publishes directly
        db.session.commit()
    api.tokens["elsewhere"] = "token-elsewhere"
    assert upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="elsewhere").json["status"] == "published"
    copied = api.post("/processes/test_review/copy", json={"from_council": "test"}, as_="analyst")
    assert copied.status_code == 201 and copied.json["status"] == "draft"
    assert start(api).status_code == 404
