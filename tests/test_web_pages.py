"""The web pages through Flask's test client: signing in and out, lock-out, CSRF, roles, forms, escaping, headers.

The browser-only parts (the diagram, GOV.UK Frontend's scripts) are in test_browser.py.
"""
from __future__ import annotations

import re
from datetime import datetime
from html import unescape

import pytest

from service.config import SIGN_IN_DEFAULTS
from service.deployments import deploy, read_folders
from service.engine import clock
from service.engine.clock import LONDON, FixedClock
from service.models import OpenTask, User, db

from conftest import FIXTURES, ROOT, USERS, Api, Browser, everything, in_council, page_text, password_hash, save_user

KEY = "carmarthenshire_step_down"

#: name -> roles of the people the pages are tried with (besides conftest's USERS)
PEOPLE = {**USERS, "coordinator": ["taf_coordinator"], "lead": ["social_worker", "team_manager"],
          "taf.manager": ["taf_manager"]}


@pytest.fixture
def time():
    """Monday 4 January 2027, 09:00 London."""
    fixed = FixedClock(datetime(2027, 1, 4, 9, 0, tzinfo=LONDON))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)




def pathway_files(key: str = KEY) -> dict[str, bytes]:
    """One pathway's diagram, decisions and forms (not the whole folder: other pathways may be half written)."""
    diagram = ROOT / "bpmn" / f"{key}.bpmn"
    forms = sorted(set(re.findall(r'camunda:formRef="([^"]+)"', diagram.read_text())))
    paths = [diagram, *(ROOT / "dmn").glob(f"{key}*.dmn"), *(ROOT / "forms" / f"{form}.form" for form in forms)]
    return read_folders(ROOT, paths)


@pytest.fixture
def site(sqlite_app, time):
    """The step-down pathway deployed; every person can sign in (password ``pw-<name>``) or use the API."""
    with sqlite_app.app_context():
        in_council(db.session)
        for name, roles in PEOPLE.items():
            user, _ = save_user(db.session, name, roles, token=f"token-{name}", display_name=name.capitalize())
            user.password_hash = password_hash(f"pw-{name}")
        deploy(db.session, pathway_files(), "test")
        db.session.commit()
    return Api(sqlite_app, {name: f"token-{name}" for name in PEOPLE})


def start(site, reference="FAM-1", as_="worker", **data):
    data = {"family_accepts_support": "yes", "safety_plan": "yes", **(data or {"weeks_open": 10})}  # section 6
    response = site.post("/cases", json={"process": KEY, "reference": reference, "data": data},
                         as_=as_)
    assert response.status_code == 201, response.json
    return response.json


def open_task(site, case_id, name=None):
    with site.app.app_context(), everything():
        tasks = db.session.query(OpenTask).filter_by(case_id=case_id, closed_at=None).all()
        task = next(t for t in tasks if name is None or t.name == name)
        return task.id


@pytest.fixture
def worker(site):
    browser = Browser(site.app)
    browser.sign_in("worker")
    return browser


# -- signing in and out ----------------------------------------------------------------------------

def test_pages_need_signing_in(site):
    browser = Browser(site.app)
    for path in ("/", "/manager", "/cases/1", "/tasks/x"):
        response = browser.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/sign-in?next=")


def test_sign_in_and_out(site):
    case = start(site, "FAM-IN")
    browser = Browser(site.app)
    page = browser.get("/sign-in")
    assert page.status_code == 200
    assert 'autocomplete="username"' in page.get_data(as_text=True)
    wrong = browser.post("/sign-in", {"name": "worker", "password": "nope"})
    assert wrong.status_code == 401
    assert "There is a problem" in page_text(wrong)
    assert "The user name or password is not right" in page_text(wrong)
    assert 'href="#password"' in wrong.get_data(as_text=True)
    assert 'value="worker"' in wrong.get_data(as_text=True)  # what was typed is kept (not the password)
    empty = browser.post("/sign-in", {"name": "", "password": ""})
    assert empty.status_code == 400
    assert "Enter your user name" in page_text(empty) and "Enter your password" in page_text(empty)

    response = browser.post("/sign-in?next=/cases/%d" % case["id"], {"name": "worker", "password": "pw-worker"})
    assert response.status_code == 302 and response.headers["Location"] == f"/cases/{case['id']}"
    inbox = browser.get("/")
    assert inbox.status_code == 200
    assert "Signed in as Worker" in page_text(inbox)
    assert "FAM-IN" in page_text(inbox) and "Complete JAFF part 1 with the family" in page_text(inbox)
    assert "Manager view" not in page_text(inbox)  # not a manager

    out = browser.post("/sign-out")
    assert out.status_code == 302 and out.headers["Location"] == "/sign-in"
    assert "You have signed out" in page_text(browser.get("/sign-in"))
    assert browser.get("/").status_code == 302


def test_sign_in_only_returns_to_this_site(site):
    browser = Browser(site.app)
    browser.get("/sign-in")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = browser.post(f"/sign-in?next={target}", {"name": "worker", "password": "pw-worker"})
        assert response.headers["Location"] == "/"
        browser.get("/")
        assert browser.post("/sign-out").status_code == 302
        browser.get("/sign-in")


def test_lock_out_after_repeated_failures(site, time):
    browser = Browser(site.app)
    browser.get("/sign-in")
    for _ in range(SIGN_IN_DEFAULTS["SIGN_IN_LOCK_AFTER"]):
        assert browser.post("/sign-in", {"name": "worker", "password": "wrong"}).status_code == 401
    locked = browser.post("/sign-in", {"name": "worker", "password": "pw-worker"})
    assert locked.status_code == 401
    assert "locked" in page_text(locked)
    time.advance(minutes=16)  # after the lock-out, the right password works again
    assert browser.post("/sign-in", {"name": "worker", "password": "pw-worker"}).status_code == 302


def test_passwords_are_hashed_with_argon2(site):
    with site.app.app_context(), everything():
        user = db.session.query(User).filter_by(name="worker").one()
        assert user.password_hash.startswith("$argon2")
        assert "pw-worker" not in user.password_hash


# -- CSRF ----------------------------------------------------------------------------------------

def test_a_form_post_without_the_csrf_token_is_refused(site, worker):
    case = start(site)
    task_id = open_task(site, case["id"])
    refused = worker.post(f"/tasks/{task_id}", {"action": "complete", "family_outcomes": "x"}, csrf=False)
    assert refused.status_code == 400
    assert "The form was not accepted" in page_text(refused)
    assert "<html" in refused.get_data(as_text=True)  # a page, not JSON
    forged = worker.client.post(f"/tasks/{task_id}", data={"action": "complete", "family_outcomes": "x",
                                                            "csrf_token": "forged"})
    assert forged.status_code == 400
    assert worker.client.post("/sign-out").status_code == 400
    assert Browser(site.app).post("/sign-in", {"name": "worker", "password": "pw-worker"},
                                  csrf=False).status_code == 400
    with site.app.app_context(), everything():
        assert db.session.get(OpenTask, task_id).closed_at is None


def test_the_api_needs_no_csrf_token(site):
    case = start(site)  # a POST with a bearer token and no CSRF token
    assert site.get(f"/cases/{case['id']}").status_code == 200


# -- who sees what ---------------------------------------------------------------------------------

def test_another_roles_task_is_a_403_page(site):
    case = start(site)
    task_id = open_task(site, case["id"])  # for social_worker
    front = Browser(site.app)
    front.sign_in("front")
    response = front.get(f"/tasks/{task_id}")
    assert response.status_code == 403
    assert "You cannot see this page" in page_text(response)
    assert "is for the social worker" in page_text(response) and "social_worker" not in page_text(response)
    assert front.post(f"/tasks/{task_id}", {"action": "complete"}).status_code == 403
    assert front.post(f"/tasks/{task_id}/claim").status_code == 403
    assert front.get(f"/cases/{case['id']}").status_code == 403
    assert front.get(f"/cases/{case['id']}/diagram.bpmn").status_code == 403
    assert "FAM-1" not in page_text(front.get("/"))  # nor in the inbox


def test_an_unknown_case_or_task_is_a_404_page(worker):
    response = worker.get("/cases/99999")
    assert response.status_code == 404
    assert "Page not found" in page_text(response)
    assert "There is no case 99999." in page_text(response)
    assert worker.get("/tasks/no-such-task").status_code == 404


def test_the_manager_view_is_for_managers(site, worker):
    assert worker.get("/manager").status_code == 403


# -- the inbox -------------------------------------------------------------------------------------

def test_inbox_lists_my_tasks_most_urgent_first_with_overdue_in_words(site, worker, time):
    start(site, "FAM-OLD")
    time.move_to(datetime(2027, 1, 12, 9, 0, tzinfo=LONDON))  # FAM-OLD's task was due on the 11th
    start(site, "FAM-NEW")
    worker.sign_in("worker")  # eight days on, yesterday's session has long ended
    page = worker.get("/")
    body = page_text(page)
    assert body.index("FAM-OLD") < body.index("FAM-NEW")
    assert "1 overdue" in body
    row = re.search(r'<tr class="govuk-table__row" data-task-id="[^"]+">(.*?)</tr>', page.get_data(as_text=True), re.S)[1]
    assert "FAM-OLD" in row and "Overdue" in row and "11 January 2027 at 9am" in unescape(row)
    assert "Step down from statutory services to TAF (Carmarthenshire)" in body


def test_claim_and_reassign(site, worker, time):
    case = start(site)
    task_id = open_task(site, case["id"])
    claimed = worker.post(f"/tasks/{task_id}/claim", {"next": "/"})
    assert claimed.status_code == 302 and claimed.headers["Location"] == "/"
    with site.app.app_context(), everything():
        assert db.session.get(OpenTask, task_id).assignee == "worker"
    page = worker.get(f"/tasks/{task_id}")
    assert "It is assigned to you" in page_text(page)
    assert "Give this task to" not in page_text(page)  # not a manager

    lead = Browser(site.app)
    lead.sign_in("lead")  # social_worker and team_manager
    case2 = start(site, "FAM-2")
    task2 = open_task(site, case2["id"])
    page = lead.get(f"/tasks/{task2}")
    assert "Give this task to" in page_text(page)
    given = lead.post(f"/tasks/{task2}/claim", {"assignee": "worker"})
    assert given.status_code == 302
    with site.app.app_context(), everything():
        assert db.session.get(OpenTask, task2).assignee == "worker"
    assert "FAM-2" in page_text(worker.get("/"))
    # People are named as the pages name them (their display name): on the task and in the team's list
    assert re.search(r"Assigned to\s+Worker\b", page_text(lead.get(f"/tasks/{task2}")))
    time.move_to(datetime(2027, 3, 1, 9, 0, tzinfo=LONDON))  # the task is overdue: on the manager's list
    lead.sign_in("lead")  # the page session has ended meanwhile
    team = page_text(lead.get("/manager"))
    time.move_to(datetime(2027, 1, 4, 9, 0, tzinfo=LONDON))
    assert re.search(r"FAM-2\b.*?\bWorker\b", team, re.S), team
    # someone without the role cannot be given it: the error is shown by the field
    with site.app.app_context(), everything():
        task3 = open_task(site, start(site, "FAM-3")["id"])
    refused = lead.post(f"/tasks/{task3}/claim", {"assignee": "front"})
    assert refused.status_code == 422
    assert "front does not have the role social_worker" in page_text(refused)
    assert 'href="#assignee"' in refused.get_data(as_text=True)
    # Reassign with nobody chosen is an error by the field, never a silent claim for the manager
    unchosen = lead.post(f"/tasks/{task3}/claim", {"assignee": "", "action": "reassign"})
    assert unchosen.status_code == 422 and "Choose who to give the task to" in page_text(unchosen)
    with site.app.app_context(), everything():
        assert db.session.get(OpenTask, task3).assignee is None


# -- the task form ---------------------------------------------------------------------------------

def test_the_task_form_is_rendered_from_its_definition(site, worker):
    case = start(site)
    page = worker.get(f"/tasks/{open_task(site, case['id'])}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Complete JAFF part 1 with the family" in page_text(page)
    assert '<textarea class="govuk-textarea govuk-js-character-count' in html  # maxLength: a character count
    assert 'name="family_outcomes"' in html and 'name="professional_view"' in html
    assert '<legend class="govuk-fieldset__legend govuk-fieldset__legend--m">' in html and "Family consent" in html
    assert 'type="checkbox"' in html and 'name="shared_with_family" type="checkbox" value="true"' in html
    assert 'type="radio"' in html and 'value="verbal"' in html
    assert "Your view of the case (optional)" in page_text(page)
    # the text component: escaped, then markdown-ish (heading, bold)
    assert '<h2 class="govuk-heading-m">Joint Assessment Family Framework, part 1</h2>' in html
    assert "<strong>with the family</strong>" in html
    # the element's documentation is the guidance
    assert "Guidance from the pathway" in page_text(page) and "Joint Assessment Family Framework (JAFF) part 1 form" in page_text(page)
    assert 'name="csrf_token"' in html


def test_a_missing_required_field_is_shown_gov_uk_style_and_what_was_typed_is_kept(site, worker):
    case = start(site)
    task_id = open_task(site, case["id"])
    worker.get(f"/tasks/{task_id}")
    response = worker.post(f"/tasks/{task_id}", {"action": "complete", "professional_view": "<b>Kept</b> view",
                                                  "consent_form": "verbal", "shared_with_family": "true"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<title>Error: " in html
    summary = re.search(r'<div class="govuk-error-summary".*?</div>\s*</div>\s*</div>', html, re.S)[0]
    assert 'href="#family_outcomes"' in summary
    assert "Enter clear outcomes for intervention identified with the family" in summary
    assert 'id="family_outcomes-error"' in html  # the message at the field
    assert "govuk-textarea--error" in html
    assert "&lt;b&gt;Kept&lt;/b&gt; view</textarea>" in html  # kept, and escaped
    assert re.search(r'value="verbal" checked', html)
    assert re.search(r'name="shared_with_family" type="checkbox" value="true" checked', html)
    with site.app.app_context(), everything():
        assert db.session.get(OpenTask, task_id).closed_at is None


def test_save_draft_and_come_back_to_it(site, worker):
    case = start(site)
    task_id = open_task(site, case["id"])
    worker.get(f"/tasks/{task_id}")
    saved = worker.post(f"/tasks/{task_id}", {"action": "draft", "professional_view": "Half done",
                                               "consent_form": "signed"})
    assert saved.status_code == 302 and saved.headers["Location"] == f"/tasks/{task_id}"
    page = worker.get(f"/tasks/{task_id}")
    assert "saved as a draft" in page_text(page)
    html = page.get_data(as_text=True)
    assert ">Half done</textarea>" in html
    assert re.search(r'value="signed" checked', html)
    with site.app.app_context(), everything():
        task = db.session.get(OpenTask, task_id)
        assert task.closed_at is None and task.draft["professional_view"] == "Half done"


def test_completing_a_task_moves_the_case_on(site, worker):
    case = start(site)
    task_id = open_task(site, case["id"])
    worker.get(f"/tasks/{task_id}")
    done = worker.post(f"/tasks/{task_id}", {"action": "complete", "family_outcomes": "Better routines",
                                              "consent": "given", "shared_with_family": "true",
                                              "consent_form": "signed"})
    assert done.status_code == 302 and done.headers["Location"] == f"/cases/{case['id']}"
    page = worker.get(f"/cases/{case['id']}")
    body = page_text(page)
    assert "You completed 'Complete JAFF part 1 with the family'" in body
    assert "Check JAFF part 1 in the TAF box" in body
    assert 'data-current="Task_CheckJaffPart1"' in page.get_data(as_text=True)
    assert "Better routines" in body
    # the task is gone: a second post is a 409 page linking to the case
    again = worker.post(f"/tasks/{task_id}", {"action": "complete", "family_outcomes": "x"})
    assert again.status_code == 409
    assert "no longer open" in page_text(again)
    # the next task is the coordinator's
    coordinator = Browser(site.app)
    coordinator.sign_in("coordinator")
    assert "FAM-1" in page_text(coordinator.get("/"))


def test_a_three_part_date_and_a_required_checkbox(site):
    case = start(site, "FAM-D")
    coordinator = Browser(site.app)
    coordinator.sign_in("coordinator")
    worker_task = open_task(site, case["id"], "Task_CompleteJaffPart1")
    site.post(f"/tasks/{worker_task}/complete", json={"data": {"family_outcomes": "x", "consent": "given",
                                                             "consent_form": "signed", "shared_with_family": True}}, as_="worker")
    site.post(f"/tasks/{open_task(site, case['id'], 'Task_CheckJaffPart1')}/complete",
              json={"data": {"jaff_complete": True}}, as_="coordinator")
    site.post(f"/tasks/{open_task(site, case['id'], 'Task_AllocationDecision')}/complete",
              json={"data": {"allocation_decision": "multi_agency"}}, as_="coordinator")
    task_id = open_task(site, case["id"], "Task_ContactSocialWorker")
    page = coordinator.get(f"/tasks/{task_id}")
    html = page.get_data(as_text=True)
    assert 'name="meeting_date-day"' in html and 'name="meeting_date-month"' in html and 'name="meeting_date-year"' in html
    wrong = coordinator.post(f"/tasks/{task_id}", {"action": "complete", "meeting_date-day": "31",
                                                    "meeting_date-month": "2", "meeting_date-year": "2027"})
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert 'href="#meeting_date-day"' in html
    assert 'href="#social_worker_contacted"' in html
    assert 'value="31"' in html  # kept
    done = coordinator.post(f"/tasks/{task_id}", {"action": "complete", "social_worker_contacted": "true",
                                                   "meeting_date-day": "21", "meeting_date-month": "1",
                                                   "meeting_date-year": "2027"})
    assert done.status_code == 302
    case_page = page_text(coordinator.get(f"/cases/{case['id']}"))
    assert "Hold the step-down meeting" in case_page
    assert "21 January 2027" in case_page and "2027-01-21" not in case_page


def test_a_required_formdata_boolean_is_yes_no_radios(site):
    assert site.deploy(FIXTURES / "pathways").status_code == 201
    response = site.post("/cases", json={"process": "test_review", "reference": "REV-1", "data": {"needs": 2}})
    assert response.status_code == 201, response.json
    browser = Browser(site.app)
    browser.sign_in("worker")
    task_id = open_task(site, response.json["id"], "Task_Assess")
    html = browser.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert re.search(r'name="risk" type="radio" value="true"', html)
    assert re.search(r'name="risk" type="radio" value="false"', html)
    assert "Assess within two days." in html  # the documentation
    missing = browser.post(f"/tasks/{task_id}", {"action": "complete"})
    assert missing.status_code == 422
    assert "Select whether risk of significant harm" in page_text(missing)
    assert browser.post(f"/tasks/{task_id}", {"action": "complete", "risk": "false"}).status_code == 302


# -- the case page ---------------------------------------------------------------------------------

def test_the_case_page(site, worker):
    case = start(site, "FAM-C", weeks_open=10, family_name="Jones")
    page = worker.get(f"/cases/{case['id']}")
    body = page_text(page)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Case FAM-C" in body
    assert "Step down from statutory services to TAF (Carmarthenshire) (version 1)" in body
    assert "carmarthenshire_step_down" not in body  # the pathway's name, never its key
    assert "Active" in body
    assert "Jones" in body and "Family name" in body
    # the pending timer, in London time as people write it
    assert "11 January 2027 at 9am" in body
    # the history
    assert "Case started" in body and "Decision: " in body
    # the diagram is loaded by a static script from the case's own route
    assert f'data-diagram-url="/cases/{case["id"]}/diagram.bpmn"' in html
    assert 'data-current="Task_CompleteJaffPart1"' in html
    assert '<script src="/static/js/case-diagram.js">' in html
    assert "needs JavaScript" in body  # said without scripts
    diagram = worker.get(f"/cases/{case['id']}/diagram.bpmn")
    assert diagram.status_code == 200 and diagram.mimetype == "application/xml"
    assert b'id="Task_CompleteJaffPart1"' in diagram.data


def test_hostile_case_data_is_shown_as_text(site, worker):
    hostile = '<script>alert("x")</script>'
    case = start(site, "FAM-<b>bold</b>", weeks_open=10, family_name=hostile, social_worker_name='"><img src=x>')
    page = worker.get(f"/cases/{case['id']}")
    html = page.get_data(as_text=True)
    assert hostile not in html and "<img src=x>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert hostile in page_text(page)  # shown, as text
    inbox = worker.get("/").get_data(as_text=True)
    assert "<b>bold</b>" not in inbox and "FAM-&lt;b&gt;bold&lt;/b&gt;" in inbox
    task = worker.get(f"/tasks/{open_task(site, case['id'])}").get_data(as_text=True)
    assert "<b>bold</b>" not in task


# -- the manager view ------------------------------------------------------------------------------

def test_the_manager_view(site, time):
    start(site, "FAM-LATE")
    start(site, "FAM-ALSO", weeks_open=3, family_name="x")
    case = start(site, "FAM-DONE", weeks_open=3)
    site.post(f"/tasks/{open_task(site, case['id'])}/complete", json={"data": {"family_support": "none"}})
    time.move_to(datetime(2027, 1, 8, 9, 0, tzinfo=LONDON))
    start(site, "FAM-SOON")  # due 15 January: not soon
    time.move_to(datetime(2027, 1, 11, 12, 0, tzinfo=LONDON))
    manager = Browser(site.app)
    manager.sign_in("taf.manager")
    assert "Manager view" in page_text(manager.get("/"))
    page = manager.get("/manager")
    assert page.status_code == 200
    body = page_text(page)
    overdue = body[body.index("Overdue ("):body.index("Due in the next")]
    assert "FAM-LATE" in overdue and "FAM-ALSO" in overdue and "Overdue" in overdue
    assert "FAM-SOON" not in overdue
    counts = body[body.index("Cases by pathway and outcome"):]
    assert re.search(r"Active – 3", counts)
    assert re.search(r"Completed Closed 1", counts)
    # a manager of another pathway's team sees none of these cases
    other = Browser(site.app)
    other.sign_in("manager")  # team_manager: no role in the step-down pathway
    body = page_text(other.get("/manager"))
    assert "FAM-LATE" not in body and "No cases yet" in body


# -- headers and cookies ---------------------------------------------------------------------------

def test_security_headers(site, worker):
    for response in (worker.get("/"), worker.get("/sign-in"), worker.get("/cases/99999"),
                     site.get("/processes")):
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"]
    assert worker.get("/").headers["Cache-Control"] == "no-store"
    html = worker.get("/").get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline scripts"
    assert " style=" not in html, "no inline styles"


def test_the_session_cookie_is_secure_over_https(site):
    plain = Browser(site.app)
    response = plain.sign_in("worker")
    cookie = response.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = Browser(site.app, base_url="https://localhost")
    secure.get("/sign-in")
    response = secure.post("/sign-in", {"name": "worker", "password": "pw-worker"},
                           headers={"Referer": "https://localhost/sign-in"})
    assert response.status_code == 302
    assert "Secure" in response.headers.get("Set-Cookie")
    assert response.headers["Strict-Transport-Security"]


def test_no_gov_uk_branding(worker):
    html = worker.get("/").get_data(as_text=True)
    assert "Step Pathways" in html
    assert "govuk-header__logotype" not in html and "crown" not in html.lower() and "GDS Transport" not in html
    assert 'href="#main-content"' in html  # the skip link


# -- forms that behave (issue 13 item 10) ------------------------------------------------------------

def test_simple_hide_conditions_render_as_data_attributes_for_the_browser(site, worker):
    case = start(site, "FAM-HIDE")
    html = worker.get(f"/tasks/{open_task(site, case['id'], 'Task_CompleteJaffPart1')}").get_data(as_text=True)
    assert 'js/conditional.js' in html  # a file: the content security policy forbids inline scripts
    wrappers = re.findall(r'<div class="sp-conditional" data-hide-key="([^"]*)" data-hide-op="([^"]*)" '
                          r'data-hide-value="([^"]*)">\s*<div class="govuk-form-group[^"]*">\s*'
                          r'(?:<fieldset[^>]*>\s*<legend[^>]*>\s*)?(?:<label[^>]*>\s*)?([^<]+?)\s*<', html)
    assert ("consent", "ne", "not_sought", "Why consent was not sought") in wrappers
    assert ("consent", "ne", "not_sought", "Manager who agreed not to seek consent") in wrappers
    assert ("consent", "eq", "given", "Have the family been told that the information is shared without their consent?") in wrappers
    assert ("consent", "ne", "given", "How was consent given?") in wrappers
    # a question without a condition has no wrapper: every field still shows without JavaScript
    assert 'data-hide-key="family_outcomes"' not in html and html.count('class="sp-conditional"') == 4


def test_only_simple_conditions_go_to_the_browser():
    from service.forms.conditions import browser_condition

    assert browser_condition('=consent != "not_sought"') == {"key": "consent", "op": "ne", "value": "not_sought"}
    assert browser_condition('=consent = "given"') == {"key": "consent", "op": "eq", "value": "given"}
    assert browser_condition("=not(caf_in_place)") == {"key": "caf_in_place", "op": "not", "value": ""}
    assert browser_condition("=jaff_complete") == {"key": "jaff_complete", "op": "truthy", "value": ""}
    for left_to_the_server in ('=family_wants_caf = "yes" and consent = "given"', "=true", "=not(", None, "",
                               '=a = "x\\"y"', "=count(x) > 2"):
        assert browser_condition(left_to_the_server) is None


def _at_allocation(site, reference):
    case = start(site, reference)
    site.post(f"/tasks/{open_task(site, case['id'], 'Task_CompleteJaffPart1')}/complete",
              json={"data": {"family_outcomes": "x", "consent": "given", "consent_form": "signed",
                             "shared_with_family": True}}, as_="worker")
    site.post(f"/tasks/{open_task(site, case['id'], 'Task_CheckJaffPart1')}/complete",
              json={"data": {"jaff_complete": True}}, as_="coordinator")
    return case, open_task(site, case["id"], "Task_AllocationDecision")


def test_an_allocation_decision_shows_check_your_answers_before_it_is_completed(site):
    case, task_id = _at_allocation(site, "FAM-CYA")
    coordinator = Browser(site.app)
    coordinator.sign_in("coordinator")
    form = coordinator.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert re.search(r">\s*Continue\s*</button>", form)  # not "Complete task": the check page comes first
    answers = {"allocation_meeting_date-day": "6", "allocation_meeting_date-month": "1",
               "allocation_meeting_date-year": "2027", "allocation_decision": "multi_agency", "taf_number": "TAF-12",
               "taf_coordinator_name": "coordinator", "supporting_agencies": "School nurse"}
    # wrong answers go back to the form with their errors, not to the check page
    wrong = coordinator.post(f"/tasks/{task_id}", {**answers, "allocation_decision": "", "action": "complete"})
    assert wrong.status_code == 422 and "Check your answers" not in page_text(wrong)
    check = coordinator.post(f"/tasks/{task_id}", {**answers, "action": "complete"})
    assert check.status_code == 200
    html, text = check.get_data(as_text=True), page_text(check)
    assert "Check your answers before completing" in text
    assert "Accepted: TAF multi-agency" in text and "multi_agency" not in text  # the option's label
    assert "6 January 2027" in text and "Coordinator" in text  # a date in words, a person by name
    assert re.search(r'formaction="/tasks/[^"]+#allocation_decision"', html)  # Change goes back to the question
    assert re.search(r'<input type="hidden" name="taf_number" value="TAF-12">', html)  # the answers travel here
    assert open_task(site, case["id"], "Task_AllocationDecision") == task_id  # nothing completed yet
    with coordinator.client.session_transaction() as session:
        assert "TAF-12" not in str(dict(session))  # not in the session
    # Change: the form again, with the answers as given
    carried = {**answers, "action": "change"}
    again = coordinator.post(f"/tasks/{task_id}", carried)
    assert again.status_code == 200 and 'value="TAF-12"' in again.get_data(as_text=True)
    assert "Check your answers" not in page_text(again)
    # Confirm and complete
    done = coordinator.post(f"/tasks/{task_id}", {**answers, "action": "confirm"})
    assert done.status_code == 302
    data = site.get(f"/cases/{case['id']}", as_="coordinator").json["data"]
    assert (data["allocation_decision"], data["taf_number"], data["taf_coordinator_name"]) == \
        ("multi_agency", "TAF-12", "coordinator")


def test_a_form_without_check_answers_completes_at_once(site, worker):
    case = start(site, "FAM-NOCYA")
    task_id = open_task(site, case["id"], "Task_CompleteJaffPart1")
    assert re.search(r">\s*Complete task\s*</button>", worker.get(f"/tasks/{task_id}").get_data(as_text=True))
    done = worker.post(f"/tasks/{task_id}", {"action": "complete", "family_outcomes": "x", "consent": "given",
                                            "consent_form": "signed", "shared_with_family": "true"})
    assert done.status_code == 302
