"""AfC's weekly Step up / Step down Transitions Meeting tracker: GET /api/v1/tracker and GET /tracker/print.

Built live from the active afc_step_up / afc_step_down cases (protocol section 3: 'the case will be included in the
Step up/Step down Transitions Meeting list (or tracker)'; 'When completed remove case from ... tracker').
"""
from __future__ import annotations

import pytest
from sqlalchemy import select
from afc_support import Flow, utc
from conftest import Api, Browser, everything, make_app, password_hash

from service import tracker_page
from conftest import save_user
from service.models import User, db

UP_DOCS = ["caf_dpr", "transfer_summary", "chronology", "genogram"]
DOWN_DOCS = ["consent_form", "assessment_action_plan", "transfer_summary", "chronology", "genogram"]


@pytest.fixture
def api(tmp_path, frozen_clock):
    app = make_app(f"sqlite:///{tmp_path / 'cases.db'}")
    tracker_page.init_app(app)
    tracker_page.init_app(app)  # a second call (create_app wiring it as well) changes nothing
    tokens = {}
    with app.app_context(), everything():
        for name, roles in {"admin": ["admin"], "analyst": ["analyst"], "outsider": ["taf_coordinator"]}.items():
            save_user(db.session, name, roles, token=f"token-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    client = Api(app, tokens)
    client.deploy_pathways()
    yield client
    with app.app_context(), everything():
        db.session.remove()
        db.engine.dispose()


def step_up(api, clock, reference="UP-1", **changes):
    flow = Flow(api, clock, "afc_step_up")
    data = {"child_name": "Alex", "sending_manager": "Pat PEH", "receiving_manager": "Chris CSC",
            "transitions_meeting_date": "2027-01-07", "rationale": "Needs escalating", "caf_in_place": True,
            "safeguarding_incident": "no", "significant_harm": "no"}
    data.update(changes)
    flow.start(data, reference=reference)
    return flow


def step_down(api, clock, reference="DOWN-1"):
    flow = Flow(api, clock, "afc_step_down")
    flow.start({"child_name": "Jo", "sending_manager": "Dana CSC", "receiving_manager": "Pat PEH",
                "transitions_meeting_date": "2027-01-07", "rationale": "Needs met"}, reference=reference,
               role="csc_manager")
    return flow


def test_cases_in_both_directions_with_their_fields(api, frozen_clock):
    up = step_up(api, frozen_clock)
    down = step_down(api, frozen_clock)
    down.complete("Task_InitialDiscussion", {"receiving_manager": "Robin PEH", "decision_date": "2026-12-21",
                                             "peh_can_meet_needs": "yes", "managers_agree": "yes", "significant_harm": "no",
                                             "decision_reason": "Ready"}, "peh_manager")
    down.complete("Task_RecordConsent", {"consent": "given"}, "csc_social_worker")
    down.complete("Task_AllocateLeadProfessional", {"allocated_worker": down.users["peh_practitioner"]}, "peh_manager")
    rows = up.tracker()
    assert list(rows) == [up.case["id"], down.case["id"]]  # longest in transition first
    a, b = rows[up.case["id"]], rows[down.case["id"]]
    assert (a["direction"], a["reference"], a["child_name"]) == ("step up", "UP-1", "Alex")
    assert (a["sending_manager"], a["receiving_manager"]) == ("Pat PEH", "Chris CSC")
    assert (a["allocated"], a["allocated_worker"]) == (False, None)
    assert [d["value"] for d in a["documents"]] == UP_DOCS
    assert a["documents_received"] == [] and len(a["documents_missing"]) == 4
    assert a["stage"] == ["Initial discussion with the PEH manager"]
    assert (b["direction"], b["sending_manager"], b["receiving_manager"]) == ("step down", "Dana CSC", "Robin PEH")
    assert (b["allocated"], b["allocated_worker"]) == (True, "user-peh_practitioner")
    assert [d["value"] for d in b["documents"]] == DOWN_DOCS
    assert b["documents_missing"] == ["Consent form", "Social Care Assessment and Action Plan", "Transfer Summary",
                                      "Update Chronology", "Genogram"]
    assert (b["decision_date"], b["transitions_meeting_date"]) == ("2026-12-21", "2027-01-07")
    assert (a["days_in_transition"], a["started_on"]) == (0, "2026-12-21")


def test_a_missing_document_then_received(api, frozen_clock):
    down = step_down(api, frozen_clock)
    down.complete("Task_InitialDiscussion", {"receiving_manager": "Pat PEH", "decision_date": "2026-12-21",
                                             "peh_can_meet_needs": "yes", "managers_agree": "yes", "significant_harm": "no",
                                             "decision_reason": "Ready"}, "peh_manager")
    down.complete("Task_RecordConsent", {"consent": "given"}, "csc_social_worker")
    assert "Send the document checklist" in down.tracker()[down.case["id"]]["stage"]
    down.complete("Task_SendDocumentChecklist", {"documents_received": DOWN_DOCS[1:]}, "csc_social_worker")
    row = down.tracker()[down.case["id"]]
    assert row["documents_missing"] == ["Consent form"]
    assert [d["received"] for d in row["documents"]] == [False, True, True, True, True]
    assert "Chase the missing documents" in row["stage"]  # chased, while the plan goes ahead
    down.complete("Task_ChaseMissingDocuments", {"documents_received": DOWN_DOCS, "documents_chase_notes": "Signed"},
                  "csc_social_worker")
    row = down.tracker()[down.case["id"]]
    assert row["documents_missing"] == []
    assert len(row["documents_received"]) == 5


def test_days_in_transition_move_with_the_clock(api, frozen_clock):
    up = step_up(api, frozen_clock)
    assert up.tracker()[up.case["id"]]["days_in_transition"] == 0
    frozen_clock.move_to(utc(2026, 12, 21, 23, 59))
    assert up.tracker()[up.case["id"]]["days_in_transition"] == 0
    frozen_clock.move_to(utc(2026, 12, 28, 10, 0))
    assert up.tracker()[up.case["id"]]["days_in_transition"] == 7


def test_a_completed_transition_leaves_the_list(api, frozen_clock):
    up = step_up(api, frozen_clock, caf_in_place=False, safeguarding_incident="yes")
    other = step_up(api, frozen_clock, reference="UP-2")
    up.complete("Task_UrgentReferralToSpa", {"spa_action": "Visited with police"}, "spa")
    up.complete("Task_ReferToSpa", {"consent": "given", "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    up.complete("Task_AllocateSocialWorker", {"allocated_worker": up.users["csc_social_worker"]}, "csc_manager")
    up.complete("Task_SendDocumentChecklist", {"documents_received": UP_DOCS[1:]}, "peh_manager")
    up.complete("Task_AgreeStepUpPlan", {"transition_plan": "Plan", "tac_visit_date": "2027-01-04"}, "csc_manager")
    assert up.case["id"] in up.tracker()
    up.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "csc_social_worker")
    assert up.outcome() == "stepped_up"
    assert list(up.tracker()) == [other.case["id"]]
    # A case that ends without a transition leaves the list too.
    other.complete("Task_InitialDiscussion", {"receiving_manager": "C", "decision_date": "2026-12-21",
                                              "threshold_met": "not_met", "managers_agree": "yes",
                                              "decision_reason": "Below"}, "csc_manager")
    assert up.tracker() == {}


def test_who_may_read_the_tracker(api, frozen_clock):
    step_up(api, frozen_clock)
    assert api.get("/tracker", as_=None).status_code == 401
    assert api.get("/tracker", as_="outsider").status_code == 403
    assert api.get("/tracker", as_="admin").status_code == 200
    for role in ("spa", "peh_practitioner", "head_of_integrated_working"):
        assert len(api.get("/tracker", as_=api.as_role(role)).json) == 1
    assert "/api/v1/tracker" in api.get("/openapi.json", as_=None).json["paths"]


def _reader(api, name: str):
    """``name`` signed in to the pages (the printable tracker is a page: no token ever travels in its URL)."""
    with api.app.app_context():
        user = db.session.scalars(select(User).where(User.name == name)).one()
        user.password_hash = password_hash(f"pw-{name}")
        db.session.commit()
    browser = Browser(api.app)
    browser.sign_in(name)
    return browser


def test_printable_page(api, frozen_clock):
    up = step_up(api, frozen_clock, child_name="<script>alert(1)</script>", sending_manager="O'Neil & Co")
    step_down(api, frozen_clock)
    anonymous = api.app.test_client().get("/tracker/print")
    assert anonymous.status_code == 302 and "/sign-in" in anonymous.headers["Location"]
    assert api.app.test_client().get(f"/tracker/print?token={api.tokens['admin']}").status_code == 302
    assert _reader(api, "outsider").get("/tracker/print").status_code == 403
    page = _reader(api, up.users["csc_manager"]).get("/tracker/print")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "size: A4 landscape" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "O&#39;Neil &amp; Co" in html
    assert "step up" in html and "step down" in html and "Not allocated" in html
    assert "Update Chronology" in html and "2 cases in transition (1 step up, 1 step down)" in html


def test_empty_printable_page(api, frozen_clock):
    page = _reader(api, "admin").get("/tracker/print")
    assert page.status_code == 200
    assert "No cases are in transition." in page.get_data(as_text=True)


def test_the_tracker_costs_the_same_statements_for_two_cases_as_for_five(api, frozen_clock):
    """The tracker reads each case's open steps with the others', not once a case (issue 16)."""
    from test_lists_cost_their_page import Statements

    step_up(api, frozen_clock)
    step_down(api, frozen_clock)
    assert len(api.get("/tracker", as_="admin").json) == 2  # each pathway's diagram and forms read once
    with Statements(api.app) as two:
        assert len(api.get("/tracker", as_="admin").json) == 2
    step_up(api, frozen_clock, reference="UP-2")
    step_down(api, frozen_clock, reference="DOWN-2")
    step_down(api, frozen_clock, reference="DOWN-3")
    with Statements(api.app) as five:
        rows = api.get("/tracker", as_="admin").json
    assert len(rows) == 5 and all(row["stage"] for row in rows)
    assert len(five.seen) == len(two.seen)
