"""Drafts, approval and publishing in the analyst pages (issue 17, item 4), through Flask's test client: an
analyst submits a draft from its version page, it is listed under "Waiting for approval", its author cannot
publish it (no button, and a POST is refused), another pathway approver publishes it from the approval page
(the diff against the published version, the scenario results, the history); rejecting needs a reason; a
failing scenario blocks publishing; suspending and retiring need a reason; who may do what is policy.py's.

The council here requires approval (a real council's default). The browser walk (axe-core included) is
test_browser_analyst_approval.py; another council's deployments answering 404 is test_tenancy.py's matrix.
"""
from __future__ import annotations

import io
import json
import re

import pytest
from conftest import (
    FIXTURES,
    Api,
    Browser,
    _council,
    everything,
    make_app,
    page_text,
    password_hash,
    save_user,
    sqlite_only,
)
from sqlalchemy import select

from service.models import Deployment, PathwayEvent, ProcessVersion, db

#: SQLite only (conftest.sqlite_only): the rules are the service layer's, run on both databases by
#: tests/test_pathway_versions.py and tests/test_scenario_runs.py; these pages' isolation by tests/test_tenancy.py.
database_url = sqlite_only()

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_bytes()
DMN = (PATHWAY / "test_level.dmn").read_bytes()
SANDBOX = FIXTURES / "sandbox"
SEEN_NAME = "sandbox_visit.seen.scenario.json"
COUNCIL = "strict"
USERS = {"author": ["analyst"], "both": ["analyst", "pathway_approver"], "approver": ["pathway_approver"],
         "worker": ["social_worker"], "manager": ["team_manager"]}


@pytest.fixture
def site(database_url, frozen_clock):
    app = make_app(database_url)
    tokens = {}
    with app.app_context():
        _council(db.session, COUNCIL, requires_approval=True)
        _council(db.session, "elsewhere", requires_approval=True)
        for name, roles in {**USERS, "elsewhere": ["analyst", "pathway_approver"]}.items():
            user, _ = save_user(db.session, name, roles, council="elsewhere" if name == "elsewhere" else COUNCIL,
                                token=f"token-{name}")
            user.password_hash = password_hash(f"pw-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    yield Api(app, tokens)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def upload(api, files: dict[str, bytes], as_="author") -> dict:
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    response = api.post("/deployments", data=data, as_=as_, content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    return response.json


def version_id(api, deployment: dict) -> int:
    key, number = deployment["processes"][0]["key"], deployment["processes"][0]["version"]
    return next(v["id"] for v in api.get(f"/versions?key={key}", as_="approver").json if v["version"] == number)


def signed_in(api, name) -> Browser:
    browser = Browser(api.app)
    browser.sign_in(name)
    return browser


def status_of(api, deployment_id: int) -> tuple[str, list[str]]:
    with api.app.app_context(), everything():
        deployment = db.session.get(Deployment, deployment_id)
        return deployment.status, [v.status for v in db.session.scalars(
            select(ProcessVersion).where(ProcessVersion.deployment_id == deployment_id))]


def events(api, deployment_id: int) -> list[tuple[str, str]]:
    with api.app.app_context(), everything():
        return [(e.event, e.actor) for e in db.session.scalars(
            select(PathwayEvent).where(PathwayEvent.deployment_id == deployment_id,
                                       PathwayEvent.process_version_id.is_(None)).order_by(PathwayEvent.id))]


def start(api, reference="R1"):
    return api.post("/cases", json={"process": "test_review", "reference": reference, "data": {"needs": 1}},
                    as_="worker")


def error_summary(response) -> str:
    found = re.search(r'class="govuk-error-summary".*?</div>\s*</div>', response.get_data(as_text=True), re.DOTALL)
    return page_text_of(found[0]) if found else ""


def page_text_of(html: str) -> str:
    from html import unescape
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def published_first(api) -> dict:
    """Version 1 of the review pathway, published by the approver: the version a second one is compared with."""
    first = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN})
    assert api.post(f"/deployments/{first['id']}/publish", json={}, as_="approver").status_code == 200
    return first


def second(api, as_="both") -> dict:
    return upload(api, {"review.bpmn": REVIEW.replace(b'name="Assess the family"', b'name="Assess the whole family"'),
                        "test_level.dmn": DMN}, as_=as_)


# -- submit, the list, four eyes, publish --------------------------------------------------------------

def test_submit_then_another_approver_publishes_and_the_author_cannot(site):
    published_first(site)
    draft = second(site, as_="both")  # an analyst who is also a pathway approver: four eyes still holds
    v2 = version_id(site, draft)
    both = signed_in(site, "both")
    page = page_text(both.get(f"/analyst/versions/{v2}"))
    assert "Submit for approval" in page and "Note for the approver" in page
    sent = both.post(f"/analyst/versions/{v2}/submit", {"reason": "Renamed the assessment"})
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/analyst/versions/{v2}")
    after = page_text(both.get(sent.headers["Location"]))
    assert "Sent for approval" in after and "Submit for approval" not in after
    assert status_of(site, draft["id"]) == ("submitted", ["submitted"])

    listed = page_text(both.get("/analyst/approvals"))
    assert "Waiting for approval" in listed and "Renamed the assessment" in listed and "Version 2" in listed
    assert f'href="/analyst/approvals/{draft["id"]}"' in both.get("/analyst/approvals").get_data(as_text=True)
    assert 'href="/analyst/approvals"' in both.get("/analyst").get_data(as_text=True)  # in the navigation

    own = both.get(f"/analyst/approvals/{draft['id']}")
    own_text = page_text(own)
    assert "You cannot approve your own change: another pathway approver must" in own_text
    assert "Publish</button>" not in own.get_data(as_text=True)
    assert "Assess the whole family" in own_text and "compared with version 1" in own_text  # the diff
    refused = both.post(f"/analyst/approvals/{draft['id']}/publish", {"reason": "mine"})
    assert refused.status_code == 403 and "four eyes" in page_text(refused)
    assert status_of(site, draft["id"]) == ("submitted", ["submitted"])

    approver = signed_in(site, "approver")
    review = approver.get(f"/analyst/approvals/{draft['id']}")
    assert "Publish</button>" in review.get_data(as_text=True)
    assert "You cannot approve" not in page_text(review)
    done = approver.post(f"/analyst/approvals/{draft['id']}/publish", {"reason": "Read the diff"})
    assert done.status_code == 302
    shown = page_text(approver.get(done.headers["Location"]))
    assert "Published" in shown and "Read the diff" in shown  # the history, with the reason
    assert status_of(site, draft["id"]) == ("published", ["published"])
    assert start(site).json["version"] == 2  # the version new cases start from
    assert events(site, draft["id"]) == [("deployed", "both"), ("submitted", "both"), ("published", "approver")]
    # stale: publishing again (someone else did) is refused on the page, nothing written, never a 500
    again = approver.post(f"/analyst/approvals/{draft['id']}/publish", {})
    assert again.status_code == 409 and "is published" in error_summary(again)
    assert events(site, draft["id"])[-1] == ("published", "approver")


def test_the_author_without_the_approver_role_cannot_publish_either(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    author = signed_in(site, "author")
    page = author.get(f"/analyst/approvals/{draft['id']}")
    assert "Publish</button>" not in page.get_data(as_text=True)
    assert author.post(f"/analyst/approvals/{draft['id']}/publish", {}).status_code == 403
    assert status_of(site, draft["id"]) == ("draft", ["draft"])


def test_the_page_asks_policy_who_may_publish(site, monkeypatch):
    """The button follows policy.may_publish: the same predicate the service enforces."""
    from service import policy

    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    approver = signed_in(site, "approver")
    monkeypatch.setattr(policy, "may_publish", lambda actor, author_id, requires_approval: False)
    page = approver.get(f"/analyst/approvals/{draft['id']}")
    assert "Publish</button>" not in page.get_data(as_text=True)
    assert approver.post(f"/analyst/approvals/{draft['id']}/publish", {}).status_code == 403
    assert status_of(site, draft["id"]) == ("draft", ["draft"])


def test_a_council_that_publishes_directly_shows_publish_instead_of_submit(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    with site.app.app_context(), everything():
        _council(db.session, COUNCIL).requires_approval = False
        db.session.commit()
    author = signed_in(site, "author")
    v1 = version_id(site, draft)
    page = author.get(f"/analyst/versions/{v1}").get_data(as_text=True)
    assert "Submit for approval" not in page and f'action="/analyst/versions/{v1}/publish"' in page
    done = author.post(f"/analyst/versions/{v1}/publish", {})
    assert done.status_code == 302 and "Published" in page_text(author.get(done.headers["Location"]))
    assert status_of(site, draft["id"]) == ("published", ["published"])


def test_where_approval_is_required_the_version_page_offers_no_direct_publish(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    v1 = version_id(site, draft)
    author = signed_in(site, "author")
    page = author.get(f"/analyst/versions/{v1}").get_data(as_text=True)
    assert f'action="/analyst/versions/{v1}/publish"' not in page
    assert author.post(f"/analyst/versions/{v1}/publish", {}).status_code == 403
    assert status_of(site, draft["id"]) == ("draft", ["draft"])


# -- reject --------------------------------------------------------------------------------------------

def test_rejecting_needs_a_reason_and_changes_nothing_without_one(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    approver = signed_in(site, "approver")
    refused = approver.post(f"/analyst/approvals/{draft['id']}/reject", {"reason": "  "})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Enter why you are rejecting it" in error_summary(refused)
    assert 'href="#reason"' in html and "govuk-error-message" in html
    assert status_of(site, draft["id"]) == ("draft", ["draft"])
    done = approver.post(f"/analyst/approvals/{draft['id']}/reject", {"reason": "The threshold is wrong"})
    assert done.status_code == 302
    assert status_of(site, draft["id"]) == ("rejected", ["rejected"])
    assert "The threshold is wrong" in page_text(approver.get(done.headers["Location"]))
    assert draft["id"] not in [int(i) for i in re.findall(r'data-deployment="(\d+)"',
                                                          approver.get("/analyst/approvals").get_data(as_text=True))]


def test_someone_else_cannot_reject_a_draft(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="both")
    author = signed_in(site, "author")  # an analyst, not its author, not an approver
    assert "Reject</button>" not in author.get(f"/analyst/approvals/{draft['id']}").get_data(as_text=True)
    assert author.post(f"/analyst/approvals/{draft['id']}/reject", {"reason": "no"}).status_code == 403
    assert status_of(site, draft["id"]) == ("draft", ["draft"])


# -- a failing scenario --------------------------------------------------------------------------------

def test_a_failing_scenario_blocks_publishing_with_its_message(site):
    scenario = json.loads((SANDBOX / SEEN_NAME).read_text())
    scenario["expect"]["outcome"] = "not_seen"
    draft = upload(site, {"sandbox_visit.bpmn": (SANDBOX / "sandbox_visit.bpmn").read_bytes(),
                          SEEN_NAME: json.dumps(scenario).encode()}, as_="author")
    approver = signed_in(site, "approver")
    review = page_text(approver.get(f"/analyst/approvals/{draft['id']}"))
    assert "Failed" in review and "expected the outcome 'not_seen', found 'seen'" in review  # the deploy's run
    refused = approver.post(f"/analyst/approvals/{draft['id']}/publish", {})
    assert refused.status_code == 409
    summary = error_summary(refused)
    assert "Publishing was refused: 1 scenario test failed" in summary
    assert "expected the outcome 'not_seen', found 'seen'" in summary
    assert status_of(site, draft["id"]) == ("draft", ["draft"])
    assert site.post("/cases", json={"process": "sandbox_visit", "reference": "R1", "data": {"child_name": "A"}},
                     as_="worker").status_code == 404


def test_the_approval_page_runs_the_scenarios_and_comes_back(site):
    draft = upload(site, {"sandbox_visit.bpmn": (SANDBOX / "sandbox_visit.bpmn").read_bytes(),
                          SEEN_NAME: (SANDBOX / SEEN_NAME).read_bytes()}, as_="author")
    approver = signed_in(site, "approver")
    v1 = version_id(site, draft)
    ran = approver.post(f"/analyst/versions/{v1}/scenarios/run", {"back": "approval"})
    assert ran.status_code == 302 and f"/analyst/approvals/{draft['id']}#scenarios-{v1}" in ran.headers["Location"]
    assert "all passed" in page_text(approver.get(ran.headers["Location"]))


# -- suspend, resume, retire ---------------------------------------------------------------------------

def test_suspend_and_retire_need_a_reason_and_resume_brings_new_cases_back(site):
    first = published_first(site)
    v1 = version_id(site, first)
    approver = signed_in(site, "approver")
    page = page_text(approver.get(f"/analyst/versions/{v1}"))
    assert "Suspend (no new cases)" in page and "Retire" in page and "Resume" not in page
    for action, doing in (("suspend", "suspending"), ("retire", "retiring")):
        refused = approver.post(f"/analyst/versions/{v1}/{action}", {"reason": ""})
        assert refused.status_code == 422, action
        assert f"Enter why you are {doing} it" in error_summary(refused)
        assert 'href="#reason"' in refused.get_data(as_text=True)
    assert status_of(site, first["id"]) == ("published", ["published"])
    done = approver.post(f"/analyst/versions/{v1}/suspend", {"reason": "The threshold is under review"})
    assert done.status_code == 302 and "Suspended" in page_text(approver.get(done.headers["Location"]))
    assert start(site).status_code != 201
    page = page_text(approver.get(f"/analyst/versions/{v1}"))
    assert "Resume" in page and "Suspend (no new cases)" not in page
    assert approver.post(f"/analyst/versions/{v1}/resume", {}).status_code == 302
    assert start(site).status_code == 201
    assert approver.post(f"/analyst/versions/{v1}/retire", {"reason": "Replaced by the new pathway"}).status_code == 302
    assert status_of(site, first["id"])[1] == ["retired"]
    assert start(site, "R2").status_code != 201
    stale = approver.post(f"/analyst/versions/{v1}/suspend", {"reason": "again"})
    assert stale.status_code == 409 and error_summary(stale)


def test_an_analyst_suspends_but_only_an_approver_resumes_or_retires(site):
    first = published_first(site)
    v1 = version_id(site, first)
    author = signed_in(site, "author")
    page = author.get(f"/analyst/versions/{v1}").get_data(as_text=True)
    assert "Suspend (no new cases)" in page and "Retire</button>" not in page
    assert author.post(f"/analyst/versions/{v1}/retire", {"reason": "x"}).status_code == 403
    assert author.post(f"/analyst/versions/{v1}/suspend", {"reason": "x"}).status_code == 302
    assert "Resume</button>" not in author.get(f"/analyst/versions/{v1}").get_data(as_text=True)
    assert author.post(f"/analyst/versions/{v1}/resume", {}).status_code == 403
    assert status_of(site, first["id"])[1] == ["suspended"]


# -- who may see any of it -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["worker", "manager"])
def test_someone_without_an_analyst_or_approver_role_gets_403(site, name):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    v1 = version_id(site, draft)
    someone = signed_in(site, name)
    assert someone.get("/analyst/approvals").status_code == 403
    assert someone.get(f"/analyst/approvals/{draft['id']}").status_code == 403
    for path in (f"/analyst/approvals/{draft['id']}/publish", f"/analyst/approvals/{draft['id']}/reject",
                 f"/analyst/versions/{v1}/submit", f"/analyst/versions/{v1}/publish",
                 f"/analyst/versions/{v1}/suspend", f"/analyst/versions/{v1}/retire"):
        assert someone.post(path, {"reason": "x"}).status_code == 403, path
    assert "Waiting for approval" not in page_text(someone.get("/"))
    assert status_of(site, draft["id"]) == ("draft", ["draft"])


def test_an_approver_of_another_council_sees_none_of_it(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    elsewhere = signed_in(site, "elsewhere")
    assert str(draft["id"]) not in re.findall(r'data-deployment="(\d+)"',
                                              elsewhere.get("/analyst/approvals").get_data(as_text=True))
    assert elsewhere.get(f"/analyst/approvals/{draft['id']}").status_code == 404
    assert elsewhere.post(f"/analyst/approvals/{draft['id']}/publish", {}).status_code == 404
    assert status_of(site, draft["id"]) == ("draft", ["draft"])


def test_posts_without_the_csrf_token_are_refused(site):
    draft = upload(site, {"review.bpmn": REVIEW, "test_level.dmn": DMN}, as_="author")
    approver = signed_in(site, "approver")
    assert approver.post(f"/analyst/approvals/{draft['id']}/publish", {}, csrf=False).status_code == 400
    assert status_of(site, draft["id"]) == ("draft", ["draft"])
