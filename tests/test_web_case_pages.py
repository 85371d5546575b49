# ruff: noqa: F811 (the fixtures of test_web_pages.py, imported by name, are redefined as arguments)
"""The case as the task and case pages show it (the child, why the case is here, the answers so far, linked
cases, the history in sentences), raising immediate risk from the pages, the notifications page, the
statements in the footer and the error pages: Flask's test client, as in test_web_pages.py.

The same pages in a real browser, with axe-core and at 320 pixels wide, are in test_browser.py.
"""
from __future__ import annotations

from datetime import date

import pytest
from conftest import (
    Browser,
    everything,
    in_council,
    page_text,
    password_hash,
    save_user,
)
from sqlalchemy import select
from test_web_pages import KEY, open_task, site, start, time, worker  # noqa: F401 (fixtures)

from service import case_view, policy
from service.engine import clock
from service.models import Case, Notification, User, db


def _to_allocation(site, reference="FAM-A"):
    """A case whose JAFF was sent, checked and allocated multi-agency: the coordinator's next task is open."""
    case = start(site, reference, weeks_open=10, family_name="Jones")
    assert site.post(f"/tasks/{open_task(site, case['id'], 'Task_CompleteJaffPart1')}/complete",
                     json={"data": {"family_outcomes": "Regular school attendance", "consent": "given",
                                   "consent_form": "signed", "shared_with_family": True}},
                     as_="worker").status_code == 200
    site.post(f"/tasks/{open_task(site, case['id'], 'Task_CheckJaffPart1')}/complete",
              json={"data": {"jaff_complete": True}}, as_="coordinator")
    site.post(f"/tasks/{open_task(site, case['id'], 'Task_AllocationDecision')}/complete",
              json={"data": {"allocation_decision": "multi_agency", "taf_number": "TAF-77"}}, as_="coordinator")
    return case


@pytest.fixture
def coordinator(site):
    browser = Browser(site.app)
    browser.sign_in("coordinator")
    return browser


# -- the case on the task page and the case page ----------------------------------------------------

def test_the_task_page_shows_the_case_and_every_earlier_answer_with_labels(site, coordinator):
    case = _to_allocation(site)
    page = coordinator.get(f"/tasks/{open_task(site, case['id'], 'Task_ContactSocialWorker')}")
    body, html = page_text(page), page.get_data(as_text=True)
    assert page.status_code == 200
    assert "About the case" in body and "A child of the Jones family" in body
    assert "Why the case is here Step down from statutory services to TAF (Carmarthenshire), started 4 January 2027 by Worker" in body
    assert "The answers this decision rests on" in body
    # grouped by the task that gave them, each collapsible
    assert html.count('class="govuk-details sp-answers__group"') == 4  # start, JAFF, check, allocation
    assert "Complete JAFF part 1 with the family" in body and "Allocation meeting decision" in body
    # the form's label and the option's label, never the key or the code
    assert "Decision Accepted: TAF multi-agency" in body
    assert "multi_agency" not in body and "allocation_decision" not in body
    assert "Clear outcomes for intervention identified with the family Regular school attendance" in body
    assert "JAFF part 1 is fully complete Yes" in body


def test_the_case_page_tells_the_history_in_sentences(site, coordinator):
    case = _to_allocation(site, "FAM-H")
    page = coordinator.get(f"/cases/{case['id']}")
    body = page_text(page)
    assert "Decision taken: Step-down route (8-week rule)" in body
    assert "Decision: Jaff part 1, because weeks the case has been open to social services is 10 (rule 2)" in body
    assert "Completed: Allocation meeting decision" in body
    assert "by Coordinator" in body  # people by their display names
    assert "Decision Accepted: TAF multi-agency" in body
    assert "multi_agency" not in body and "Task_" not in body and "carmarthenshire_step_down" not in body
    assert "4 January 2027 at 9am" in body


def test_the_child_comes_from_the_case_answers():
    case = Case(data={"child_name": "Ava Jones", "date_of_birth": "2015-03-02", "family_name": "Jones"})
    previous = clock.set_clock(clock.FixedClock(clock.as_utc(__import__("datetime").datetime(2027, 3, 1, 12))))
    try:
        child = case_view.child_of(case)
        assert (child.name, child.date_of_birth, child.age_text) == ("Ava Jones", date(2015, 3, 2), "11 years old")
    finally:
        clock.set_clock(previous)
    assert case_view.child_of(Case(data={"weeks_open": 3})) is None
    assert case_view.child_of(Case(data={"family_name": "Evans"})).shown_name == "A child of the Evans family"


def test_plain_words_for_dates_times_and_codes():
    from datetime import datetime

    from service.engine.clock import LONDON
    assert case_view.plain_datetime(datetime(2026, 12, 9, 14, 30, tzinfo=LONDON)) == "9 December 2026 at 2:30pm"
    assert case_view.plain_datetime(datetime(2026, 12, 9, 12, 0, tzinfo=LONDON)) == "9 December 2026 at midday"
    assert case_view.plain_value("2026-12-09") == "9 December 2026"
    assert case_view.plain_value("jaff_part_1") == "Jaff part 1"
    assert case_view.plain_value(True) == "Yes" and case_view.plain_value(["a", "b"]) == "a, b"


def test_linked_cases_show_where_a_case_was_handed_over_with_its_outcome(site, worker):
    first = start(site, "FAM-L", weeks_open=10, family_name="Jones")
    second = start(site, "FAM-L", weeks_open=10, family_name="Jones")
    with site.app.app_context(), everything():
        target = db.session.get(Case, second["id"])
        target.started_from_case_id = first["id"]
        source = db.session.get(Case, first["id"])
        source.status, source.outcome = "completed", "stepped_down"
        db.session.commit()
    body = page_text(worker.get(f"/cases/{second['id']}"))
    assert "Handed over from case FAM-L (Step down from statutory services to TAF (Carmarthenshire), outcome: Stepped down: TAF plan starts)" in body
    assert "handed over from case FAM-L" in body
    assert "Handed over to case FAM-L" in page_text(worker.get(f"/cases/{first['id']}"))
    answers = site.get(f"/cases/{second['id']}/answers", as_="worker").json
    assert answers["linked_cases"][0] == {"direction": "from", "case_id": first["id"], "reference": "FAM-L",
                                          "pathway": "Step down from statutory services to TAF (Carmarthenshire)",
                                          "status": "completed", "outcome": "Stepped down: TAF plan starts"}
    assert answers["why"]["handed_over_from"] == first["id"]


def test_the_answers_api_gives_labels_beside_the_values(site):
    case = _to_allocation(site, "FAM-API")
    response = site.get(f"/cases/{case['id']}/answers", as_="coordinator")
    assert response.status_code == 200
    groups = {g["title"]: g for g in response.json["answers"]}
    allocation = groups["Allocation meeting decision"]
    decision = next(a for a in allocation["answers"] if a["key"] == "allocation_decision")
    assert decision == {"key": "allocation_decision", "label": "Decision", "value": "multi_agency",
                        "text": "Accepted: TAF multi-agency"}
    assert allocation["by"] == "Coordinator"
    assert response.json["child"]["family_name"] == "Jones"
    assert site.get(f"/cases/{case['id']}/answers", as_="analyst").status_code == 403


# -- immediate risk --------------------------------------------------------------------------------

def test_the_red_button_is_first_on_the_case_and_task_pages(site, worker):
    case = start(site, "FAM-R", weeks_open=10, family_name="Jones")
    for path in (f"/cases/{case['id']}", f"/tasks/{open_task(site, case['id'])}"):
        html = worker.get(path).get_data(as_text=True)
        main = html[html.index('<main'):]
        first = main[main.index('>') + 1:].lstrip()
        assert first.startswith('<div class="sp-risk">'), path  # nothing in front of it
        assert 'govuk-button--warning' in first[:400] and f'href="/cases/{case["id"]}/immediate-risk"' in first[:400]


def test_raising_immediate_risk_asks_confirms_and_says_who_has_it_by_when(site, worker):
    case = start(site, "FAM-IR", weeks_open=10, family_name="Jones")
    path = f"/cases/{case['id']}/immediate-risk"
    form = worker.get(path)
    assert form.status_code == 200 and "What has happened?" in page_text(form)
    empty = worker.post(path, {"what_happened": "  "})
    assert empty.status_code == 422
    assert "There is a problem" in page_text(empty) and 'href="#what_happened"' in empty.get_data(as_text=True)
    assert "Enter what has happened" in page_text(empty)
    check = worker.post(path, {"what_happened": "Bruise on the face, says dad hit him"})
    assert check.status_code == 200
    assert "Check and send the urgent referral" in page_text(check)
    assert "Bruise on the face, says dad hit him" in page_text(check)
    with site.app.app_context(), everything():  # nothing sent yet
        assert db.session.get(Case, case["id"]).status == "active"
        assert "immediate_risk" in db.session.get(Case, case["id"]).waiting_for
    sent = worker.post(f"{path}/send", {"what_happened": "Bruise on the face, says dad hit him"})
    assert sent.status_code == 302 and sent.headers["Location"] == f"{path}/sent"
    result = page_text(worker.get(f"{path}/sent"))
    assert "Urgent referral sent" in result
    assert "Urgent referral to the Central Referral Team" in result
    assert "due by 4 January 2027 at" in result
    history = site.get(f"/cases/{case['id']}/history", as_="worker").json
    received = [e for e in history if e["event"] == "message_received"]
    assert received[-1]["detail"] == {"name": "immediate_risk",
                                      "data": {"what_happened": "Bruise on the face, says dad hit him"}}
    assert "What happened: Bruise on the face, says dad hit him" in page_text(worker.get(f"/cases/{case['id']}"))


def test_the_account_can_be_changed_before_it_is_sent(site, worker):
    case = start(site, "FAM-IR5", weeks_open=10)
    path = f"/cases/{case['id']}/immediate-risk"
    change = worker.post(path, {"what_happened": "First words", "edit": "1"})
    assert change.status_code == 200 and "What has happened?" in page_text(change)
    assert ">First words</textarea>" in change.get_data(as_text=True)
    with site.app.app_context(), everything():
        assert not [e for e in site.get(f"/cases/{case['id']}/history", as_="worker").json
                    if e["event"] == "message_received"]


def test_the_referral_needs_what_happened_even_when_the_confirmation_is_forged(site, worker):
    case = start(site, "FAM-IR2", weeks_open=10)
    refused = worker.post(f"/cases/{case['id']}/immediate-risk/send", {"what_happened": ""})
    assert refused.status_code == 422 and "Enter what has happened" in page_text(refused)
    assert worker.post(f"/cases/{case['id']}/immediate-risk/send", {"what_happened": "x"}, csrf=False).status_code == 400


def test_anyone_who_may_see_the_case_may_raise_it_and_nobody_else(site, worker, monkeypatch):
    case = start(site, "FAM-IR3", weeks_open=10)
    analyst = Browser(site.app)
    analyst.sign_in("analyst")
    assert analyst.get(f"/cases/{case['id']}/immediate-risk").status_code == 403
    assert analyst.post(f"/cases/{case['id']}/immediate-risk/send", {"what_happened": "x"}).status_code == 403
    # the rule is the policy's: without it, the worker who sees the case is refused too
    monkeypatch.setattr(policy, "may_raise_immediate_risk", lambda *args: False)
    assert worker.get(f"/cases/{case['id']}/immediate-risk").status_code == 403
    assert "Raise immediate risk" not in page_text(worker.get(f"/cases/{case['id']}"))


def test_a_closed_case_cannot_take_it_and_says_where_to_go(site, worker):
    case = start(site, "FAM-IR4", weeks_open=10)
    with site.app.app_context(), everything():
        db.session.get(Case, case["id"]).status = "completed"
        db.session.commit()
    closed = page_text(worker.get(f"/cases/{case['id']}"))
    assert "Raise immediate risk" not in closed and "phone the front door team now" in closed
    refused = worker.get(f"/cases/{case['id']}/immediate-risk")
    assert refused.status_code == 409 and "contact the front door directly" in page_text(refused)


# -- notifications ---------------------------------------------------------------------------------

def _notify(site, name, subject, case_id=None, task=None, minutes=0):
    with site.app.app_context():
        in_council(db.session)
        user = db.session.scalars(select(User).where(User.name == name)).one()
        note = Notification(user_id=user.id, case_id=case_id, task=task, kind="reminder", subject=subject,
                            body=f"Body of {subject}", created_at=clock.now().replace(minute=minutes))
        db.session.add(note)
        db.session.commit()
        return note.id


def test_notifications_newest_first_linked_with_the_unread_count_on_every_page(site, worker):
    case = start(site, "FAM-N", weeks_open=10)
    older = _notify(site, "worker", "Reminder: older", case["id"], "Task_CompleteJaffPart1", minutes=1)
    newer = _notify(site, "worker", "Escalation: newer", case["id"], None, minutes=2)
    _notify(site, "coordinator", "Someone else's", case["id"])
    inbox = worker.get("/")
    assert "Notifications 2 unread" in page_text(inbox)
    page = worker.get("/notifications")
    body, html = page_text(page), page.get_data(as_text=True)
    assert body.index("Escalation: newer") < body.index("Reminder: older")
    assert "Someone else's" not in body
    assert f'href="/tasks/{open_task(site, case["id"])}"' in html and f'href="/cases/{case["id"]}"' in html
    assert worker.post(f"/notifications/{older}/read").status_code == 302
    assert "Notifications 1 unread" in page_text(worker.get("/"))
    assert worker.post("/notifications/read").status_code == 302
    assert "unread" not in page_text(worker.get("/")).split("Signed in")[0]
    assert worker.post(f"/notifications/{newer}/read", csrf=False).status_code == 400


def test_another_persons_notification_cannot_be_marked(site, worker):
    theirs = _notify(site, "coordinator", "Theirs")
    assert worker.post(f"/notifications/{theirs}/read").status_code == 404
    assert site.post(f"/notifications/{theirs}/read", as_="worker").status_code == 404
    assert site.get("/notifications?unread=true", as_="coordinator").json[0]["read_at"] is None


def test_the_notifications_api_marks_read(site):
    one = _notify(site, "worker", "One")
    _notify(site, "worker", "Two")
    assert len(site.get("/notifications?unread=true", as_="worker").json) == 2
    marked = site.post(f"/notifications/{one}/read", as_="worker")
    assert marked.status_code == 200 and marked.json["read_at"] is not None
    assert [n["subject"] for n in site.get("/notifications?unread=true", as_="worker").json] == ["Two"]
    assert site.post("/notifications/read", as_="worker").json == {"marked": 1, "unread": 0}


# -- statements, navigation and error pages --------------------------------------------------------

def test_the_footer_links_the_accessibility_statement_and_the_privacy_notice(site):
    browser = Browser(site.app)
    sign_in = browser.get("/sign-in").get_data(as_text=True)
    assert 'href="/accessibility"' in sign_in and 'href="/privacy"' in sign_in
    assert "Accessibility statement for Step Pathways" in page_text(browser.get("/accessibility"))
    assert "Privacy notice" in page_text(browser.get("/privacy"))


def test_error_pages_are_plain_with_a_way_back(site, worker):
    missing = worker.get("/no-such-page")
    assert missing.status_code == 404 and "Page not found" in page_text(missing)
    assert 'href="/"' in missing.get_data(as_text=True)
    assert worker.get("/cases/999999").status_code == 404
    assert "go to your inbox" in page_text(worker.get("/cases/999999"))
    api = site.get("/no-such-thing", as_="worker")
    assert api.status_code == 404 and api.is_json


def test_a_500_is_a_plain_page(site, worker, monkeypatch):
    from service.web import case_pages
    site.app.config["PROPAGATE_EXCEPTIONS"] = False
    monkeypatch.setattr(case_pages, "render_template", lambda *a, **k: 1 / 0)
    page = worker.get("/accessibility")
    assert page.status_code == 500
    assert "Sorry, there is a problem with the service" in page_text(page) and "go to your inbox" in page_text(page)


def test_the_tracker_is_in_the_navigation_for_afc_roles_only(site, worker):
    assert "Transitions tracker" not in page_text(worker.get("/"))
    with site.app.app_context():
        in_council(db.session)
        user, _ = save_user(db.session, "peh", ["peh_manager"], display_name="Peh")
        user.password_hash = password_hash("pw-peh")
        db.session.commit()
    peh = Browser(site.app)
    peh.sign_in("peh")
    assert "Transitions tracker" in page_text(peh.get("/"))
    page = peh.get("/tracker")
    assert page.status_code == 200 and "Step up and step down transitions" in page_text(page)
    assert worker.get("/tracker").status_code == 403
