"""The pages in a real browser: Debian's chromium driven by Playwright, against the real app in a thread.

The walk-through (sign in, inbox, a task with a validation error, the task completed, the case moved on
and its diagram highlighting the new task) is docs/make_screenshots.py's, with its screenshots written to
a temporary folder here. Skipped when chromium, playwright or the built front-end assets are missing.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_support import axe, checked_page, reflows, shots, expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web")) as site:
        yield site


@pytest.fixture(scope="module")
def browser():
    with shots.chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []  # console errors (a CSP violation is one) and uncaught exceptions
    # (not "Failed to load resource": a 422 form answer or the favicon's 404 are expected)
    page.on("console", lambda m: page.problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.outside = []  # requests leaving 127.0.0.1
    page.on("request", lambda r: page.outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:"))
            else None)
    yield page
    context.close()


def test_complete_a_step_down_task_through_its_form(site, page, tmp_path):
    taken = shots.walk(page, site, tmp_path)
    assert all(Path(p).stat().st_size > 10_000 for p in taken.values())
    assert page.problems == [], "the content security policy or a script complained"
    assert page.outside == []
    # the diagram shows the open step in words too (not colour alone)
    assert page.locator("#diagram .sp-current-label").first.inner_text() == "Now"


def test_a_worker_gets_a_403_page_for_another_roles_task(site, page):
    coordinator_task = site.task_id("CF-2042", "Task_AgreeNextStepsWithFamily")
    shots.sign_in(page, site, "carmarthenshire.taf.coordinator")
    response = page.goto(f"{site.url}/tasks/{coordinator_task}")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You cannot see this page")).to_be_visible()


def test_a_form_post_without_the_csrf_token_is_refused(site, page):
    shots.sign_in(page, site)
    task_id = site.task_id("CF-2057", "Task_CompleteJaffPart1")
    page.goto(f"{site.url}/tasks/{task_id}")
    page.evaluate("document.querySelector('.sp-task-form input[name=csrf_token]').remove()")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="There is a problem with that request")).to_be_visible()
    assert "The form was not accepted" in page.locator("main").inner_text()


def test_without_javascript_the_case_page_shows_everything_but_the_diagram(site, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        shots.sign_in(page, site)
        page.goto(f"{site.url}/cases/{site.case_id('CF-2057')}")
        expect(page.get_by_text("The diagram of the pathway needs JavaScript")).to_be_visible()
        body = page.locator("main").inner_text()
        assert "Complete JAFF part 1 with the family" in body and "Price" in body and "Case started" in body
        assert "19 January 2027 at 10am" in body  # the reminder timer, in London time
        # and a form works with scripts off: save a draft
        page.goto(f"{site.url}/tasks/{site.task_id('CF-2057', 'Task_CompleteJaffPart1')}")
        page.get_by_label("Your view of the case (optional)").fill("Saved without scripts")
        page.get_by_role("button", name="Save draft").click()
        assert re.search(r"saved as a draft", page.locator("main").inner_text())
        assert page.get_by_label("Your view of the case (optional)").input_value() == "Saved without scripts"
    finally:
        context.close()


# -- every page type: axe-core finds nothing, and each reflows at 320 pixels ------------------------

PAGE_TYPES = ("inbox", "case", "task", "immediate risk", "check", "sent", "notifications", "accessibility",
              "privacy", "not found")


@pytest.fixture
def checked(browser):
    page = checked_page(browser)
    yield page
    page.context.close()


def _new_case(site, reference: str, **data) -> int:
    from service import cases, tenancy
    from service.models import Council, db

    with site.app.app_context():
        council = db.session.query(Council).filter_by(key=shots.COUNCIL).one()
        tenancy.act_for(db.session, council)
        case = cases.start_case(db.session, shots.KEY, reference, {"weeks_open": 10, "family_name": "Morgan",
                                                                   "family_accepts_support": "yes", "safety_plan": "yes",
                                                                   **data},
                                cases.SERVICE)
        db.session.commit()
        return case.id


def _notify(site, name: str, case_id: int, subject: str) -> None:
    from service import tenancy
    from service.engine import clock
    from service.models import Council, Notification, User, db

    with site.app.app_context():
        council = db.session.query(Council).filter_by(key=shots.COUNCIL).one()
        tenancy.act_for(db.session, council)
        user = db.session.query(User).filter_by(name=name).one()
        db.session.add(Notification(user_id=user.id, case_id=case_id, task="Task_CompleteJaffPart1", kind="reminder",
                                    subject=subject, body="Case: CF-3001\nThis step is 1 day late.",
                                    created_at=clock.now()))
        db.session.commit()


def test_every_page_type_passes_axe_and_reflows_at_320_pixels(site, checked):
    page = checked
    case_id = _new_case(site, "CF-3001")
    _notify(site, shots.WORKER, case_id, "Reminder: Complete JAFF part 1 with the family (case CF-3001)")
    shots.sign_in(page, site)
    found, narrow = {}, []

    def check(name):
        page.wait_for_load_state("networkidle")
        found[name] = axe(page)
        if not reflows(page):
            narrow.append(name)

    check("inbox")
    assert re.search(r"Notifications\s+1\s+unread", page.locator(".govuk-service-navigation").inner_text())
    page.goto(f"{site.url}/cases/{case_id}")
    page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
    check("case")
    page.goto(f"{site.url}/tasks/{site.task_id('CF-3001', 'Task_CompleteJaffPart1')}")
    check("task")
    page.goto(f"{site.url}/notifications")
    check("notifications")
    for path, name in (("/accessibility", "accessibility"), ("/privacy", "privacy"), ("/nowhere", "not found")):
        page.goto(f"{site.url}{path}")
        check(name)
    # the immediate risk flow, with its error
    page.goto(f"{site.url}/cases/{case_id}")
    page.get_by_role("button", name="Raise immediate risk").click()
    page.get_by_role("button", name="Continue").click()
    page.locator(".govuk-error-summary").wait_for()  # the same address: wait for the answer, not the URL
    check("immediate risk")
    page.get_by_label("What has happened?").fill("Disclosure at school this morning: hit with a belt.")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Check and send the urgent referral").wait_for()
    check("check")
    page.get_by_role("button", name="Send the urgent referral").click()
    page.wait_for_url(re.compile(r".*/immediate-risk/sent$"))
    check("sent")
    assert "Urgent referral to the Central Referral Team" in page.locator("main").inner_text()
    assert {name: v for name, v in found.items() if v} == {}
    assert set(found) == set(PAGE_TYPES)
    assert narrow == [], f"these pages scroll sideways at 320 pixels: {narrow}"


def test_the_red_button_comes_first_by_keyboard_on_case_and_task_pages(site, page):
    case_id = _new_case(site, "CF-3002")
    shots.sign_in(page, site)
    for path in (f"/cases/{case_id}", f"/tasks/{site.task_id('CF-3002', 'Task_CompleteJaffPart1')}"):
        page.goto(f"{site.url}{path}")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Enter")  # to the main content
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent.trim()")
        assert focused.startswith("Raise immediate risk"), (path, focused)
    assert page.problems == []


def test_printing_the_case_record_shows_every_answer(site, page):
    case_id = _new_case(site, "CF-3003")
    shots.sign_in(page, site)
    page.goto(f"{site.url}/cases/{case_id}")
    answers = page.locator(".sp-answers .govuk-details__text").first
    expect(answers).not_to_be_visible()
    page.emulate_media(media="print")
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    expect(answers).to_be_visible()
    expect(page.get_by_role("button", name="Raise immediate risk")).not_to_be_visible()
    expect(page.locator(".govuk-service-navigation")).not_to_be_visible()


def test_conditional_questions_follow_the_answers_and_pass_axe(site, page, checked):
    task_url = f"{site.url}/tasks/{site.task_id('CF-2057', 'Task_CompleteJaffPart1')}"
    for tab in (page, checked):  # with the content security policy on (page), and open to axe-core (checked)
        shots.sign_in(tab, site)
        tab.goto(task_url)
        reason = tab.get_by_role("group", name="Why consent was not sought")
        agreed_by = tab.get_by_label("Manager who agreed not to seek consent")
        how_given = tab.get_by_role("group", name="How was consent given?")
        expect(reason).not_to_be_visible()
        expect(agreed_by).not_to_be_visible()
        tab.get_by_label("Not sought").check()
        expect(reason).to_be_visible()
        expect(agreed_by).to_be_visible()
        expect(how_given).not_to_be_visible()
        tab.get_by_label("Given").check()
        expect(reason).not_to_be_visible()
        expect(how_given).to_be_visible()
        tab.get_by_label("Not sought").check()
    assert page.problems == [], "the content security policy or a script complained"
    assert axe(checked) == []
    assert checked.problems == []


def _complete_by_api(site, reference: str, task: str, name: str, data: dict) -> None:
    import json
    from urllib.request import Request, urlopen

    from service.demo import demo_token

    request = Request(f"{site.url}/api/v1/tasks/{site.task_id(reference, task)}/complete", method="POST",
                      data=json.dumps({"data": data}).encode(), headers={
                          "Authorization": f"Bearer {demo_token(name)}", "Content-Type": "application/json"})
    with urlopen(request) as response:
        assert response.status == 200


def test_an_allocation_decision_is_checked_before_it_is_sent_and_the_check_page_passes_axe(site, checked):
    _new_case(site, "CF-3010")
    _complete_by_api(site, "CF-3010", "Task_CompleteJaffPart1", shots.WORKER,
                     {"family_outcomes": "x", "consent": "given", "consent_form": "signed", "shared_with_family": True})
    coordinator = f"{shots.COUNCIL}.taf.coordinator"
    _complete_by_api(site, "CF-3010", "Task_CheckJaffPart1", coordinator, {"jaff_complete": True})
    shots.sign_in(checked, site, coordinator)
    checked.goto(f"{site.url}/tasks/{site.task_id('CF-3010', 'Task_AllocationDecision')}")
    taf_number = checked.get_by_label("TAF number")
    expect(taf_number).not_to_be_visible()
    checked.get_by_label("Accepted: TAF multi-agency").check()
    taf_number.fill("TAF-3010")
    checked.get_by_role("button", name="Continue").click()
    expect(checked.get_by_role("heading", name=re.compile("Check your answers"))).to_be_visible()
    assert axe(checked) == []
    checked.get_by_role("button", name="Change decision").click()
    assert checked.get_by_label("TAF number").input_value() == "TAF-3010"
    checked.get_by_role("button", name="Continue").click()
    checked.get_by_role("button", name="Confirm and complete").click()
    checked.wait_for_url(re.compile(r".*/cases/\d+$"))
    assert "You completed 'Allocation meeting decision'" in checked.locator("main").inner_text()
    assert checked.problems == []
