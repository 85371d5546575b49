"""The managers' pages (workload, giving tasks, the lists behind the counts, errored cases) and a case's notes
and documents pages, through Flask's test client (the browser checks are in test_browser.py)."""
from __future__ import annotations

import io
import re
from datetime import datetime
from html import unescape

import pytest
from sqlalchemy import select, update

from conftest import FIXTURES, Api, Browser, everything, in_council, page_text, password_hash, save_user
from service.engine import clock
from service.engine.clock import LONDON, FixedClock
from service.models import Case, CaseDocument, OpenTask, db

PEOPLE = {"manager": ["team_manager"], "worker": ["social_worker"], "other": ["social_worker"],
          "front": ["youth_worker"], "analyst": ["analyst"]}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00" + b"\x00" * 64


@pytest.fixture
def time():
    fixed = FixedClock(datetime(2027, 1, 4, 9, 0, tzinfo=LONDON))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)


@pytest.fixture
def site(sqlite_app, time):
    with sqlite_app.app_context():
        in_council(db.session)
        for name, roles in PEOPLE.items():
            user, _ = save_user(db.session, name, roles, token=f"token-{name}", display_name=name.capitalize())
            user.password_hash = password_hash(f"pw-{name}")
        db.session.commit()
    api = Api(sqlite_app, {name: f"token-{name}" for name in PEOPLE})
    assert api.deploy(FIXTURES / "allocation").status_code == 201
    return api


@pytest.fixture
def manager(site):
    browser = Browser(site.app)
    browser.sign_in("manager")
    return browser


def start(site, reference):
    response = site.post("/cases", json={"process": "test_allocation", "reference": reference, "data": {}},
                         as_="manager")
    assert response.status_code == 201, response.json
    return response.json


def task_of(site, case_id, name):
    with site.app.app_context(), everything():
        task = db.session.scalars(select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.name == name,
                                                         OpenTask.closed_at.is_(None))).one()
        return task.id, task.assignee


def allocated(site, reference, worker="worker"):
    case = start(site, reference)
    done = site.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"allocated_worker": worker}},
                     as_="manager")
    assert done.status_code == 200, done.json
    return case


def test_the_allocation_form_lists_the_people_with_the_role_and_gives_them_the_next_task(site, manager):
    case = start(site, "ALLOC-PAGE")
    task_id = case["tasks"][0]["id"]
    page = manager.get(f"/tasks/{task_id}")
    html = page.get_data(as_text=True)
    select_html = re.search(r'<select[^>]*name="allocated_worker".*?</select>', html, re.S)[0]
    assert "Worker (worker)" in select_html and "Other (other)" in select_html and "front" not in select_html
    refused = manager.post(f"/tasks/{task_id}", {"action": "complete", "allocated_worker": "front"})
    assert refused.status_code == 422 and 'href="#allocated_worker"' in refused.get_data(as_text=True)
    done = manager.post(f"/tasks/{task_id}", {"action": "complete", "allocated_worker": "other"})
    assert done.status_code == 302
    assert task_of(site, case["id"], "Task_Visit")[1] == "other"


def test_a_manager_opens_a_team_members_task_and_reassigns_it(site, manager):
    case = allocated(site, "TEAM-1")
    visit, _ = task_of(site, case["id"], "Task_Visit")
    page = manager.get(f"/tasks/{visit}")
    assert page.status_code == 200
    body = page_text(page)
    assert "You are seeing this task as a manager of the team" in body and "Complete task" not in body
    unchosen = manager.post(f"/tasks/{visit}/claim", {"assignee": "", "action": "reassign"})
    assert unchosen.status_code == 422 and "Choose who to give the task to" in page_text(unchosen)
    assert task_of(site, case["id"], "Task_Visit")[1] == "worker"  # never silently the manager's
    given = manager.post(f"/tasks/{visit}/claim", {"assignee": "other", "action": "reassign"})
    assert given.status_code == 302
    assert task_of(site, case["id"], "Task_Visit")[1] == "other"
    # a colleague without a manager's role still cannot open it
    colleague = Browser(site.app)
    colleague.sign_in("worker")
    assert colleague.get(f"/tasks/{visit}").status_code == 403


def test_the_workload_page_and_giving_tasks_in_bulk(site, manager, time):
    late = allocated(site, "LATE-1")
    time.move_to(datetime(2027, 1, 12, 9, 0, tzinfo=LONDON))  # the visit was due on the 9th
    manager.sign_in("manager")
    fresh = allocated(site, "FRESH-1")
    start(site, "WAITING-1")
    page = manager.get("/workload")
    assert page.status_code == 200
    body = page_text(page)
    assert "3 open tasks in your team's pathways, 1 overdue" in body
    workers = body[body.index("Open tasks by worker"):body.index("With a worker")]
    assert "Worker 2 1" in workers
    assert body.index("LATE-1") < body.index("FRESH-1")  # overdue first
    assert "team manager: 1 open task" in body
    late_visit, fresh_visit = task_of(site, late["id"], "Task_Visit")[0], task_of(site, fresh["id"], "Task_Visit")[0]
    nobody = manager.post("/workload/reassign", {"tasks": [late_visit]})
    assert nobody.status_code == 422
    assert 'href="#assignee"' in nobody.get_data(as_text=True) and "Choose who to give the task to" in page_text(nobody)
    assert manager.post("/workload/reassign", {"assignee": "other"}).status_code == 422
    from werkzeug.datastructures import MultiDict

    moved = manager.post("/workload/reassign", MultiDict([("tasks", late_visit), ("tasks", fresh_visit),
                                                          ("assignee", "other")]))
    assert moved.status_code == 302
    assert "2 tasks given to Other" in page_text(manager.get("/workload"))
    assert task_of(site, fresh["id"], "Task_Visit")[1] == "other"
    worker = Browser(site.app)
    worker.sign_in("worker")
    assert worker.get("/workload").status_code == 403


def test_the_workload_page_pages_its_workers_and_gives_from_the_page_it_is_on(site, manager, monkeypatch):
    from service import workload
    from werkzeug.datastructures import MultiDict

    monkeypatch.setattr(workload, "WORKERS_PAGE", 1)
    other = allocated(site, "OTHERS-1", "other")
    allocated(site, "WORKERS-1")
    first = manager.get("/workload")
    assert first.status_code == 200
    body = page_text(first)
    assert "2 open tasks in your team's pathways" in body and "Workers are listed by user name, 1 to a page" in body
    assert "Other: 1 open task" in body and "Worker: 1 open task" not in body
    link = re.search(r'href="(/workload\?after=[^"]+)" rel="next"', first.get_data(as_text=True))
    assert link, first.get_data(as_text=True)
    second = manager.get(unescape(link[1]))
    assert "Worker: 1 open task" in page_text(second) and "Other: 1 open task" not in page_text(second)
    assert "The first workers" in page_text(second) and 'rel="next"' not in second.get_data(as_text=True)
    after = re.search(r'name="after" value="([^"]+)"', second.get_data(as_text=True))[1]
    visit = task_of(site, other["id"], "Task_Visit")[0]
    given = manager.post("/workload/reassign", MultiDict([("tasks", visit), ("assignee", "worker"),
                                                          ("after", unescape(after))]))
    assert given.status_code == 302 and "after=" in given.headers["Location"]
    assert "Worker: 2 open tasks" in page_text(manager.get(given.headers["Location"]))
    assert manager.get("/workload?after=not-a-cursor").status_code == 422


def test_the_workload_page_says_when_it_stopped_counting(site, manager, monkeypatch):
    from service import paging, workload

    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    monkeypatch.setattr(workload, "WAITING_COUNTED", 2)
    for n in range(3):
        start(site, f"WAITING-{n}")
    body = page_text(manager.get("/workload"))
    assert "More than 2 open tasks in your team's pathways" in body
    assert "2 or more tasks are waiting to be taken: these lists count the 2 most urgent" in body
    assert "team manager: 2 open tasks" in body


def test_a_manager_gives_a_workers_whole_pile_from_its_page(site, manager, monkeypatch):
    from service import workload
    from werkzeug.datastructures import MultiDict

    monkeypatch.setattr(workload, "PILE_TASKS", 1)
    visits = [task_of(site, allocated(site, f"AWAY-{n}")["id"], "Task_Visit")[0] for n in range(3)]
    listed = manager.get("/workload")
    assert 'href="/workload/workers/worker"' in listed.get_data(as_text=True)
    assert "All 3 open tasks with Worker" in page_text(listed)
    whole = page_text(manager.get("/workload/workers/worker"))
    assert "Open tasks with Worker" in whole and all(f"AWAY-{n}" in whole for n in range(3))
    assert "Worker: 3 open tasks" in whole and "most urgent shown" not in whole
    nobody = manager.post("/workload/reassign", MultiDict([("tasks", visits[0]), ("worker", "worker")]))
    assert nobody.status_code == 422 and "Open tasks with Worker" in page_text(nobody)
    assert "Choose who to give the task to" in page_text(nobody)
    one = manager.post("/workload/reassign", MultiDict([("tasks", visits[0]), ("assignee", "other"),
                                                        ("worker", "worker")]))
    assert one.status_code == 302 and one.headers["Location"].endswith("/workload/workers/worker")
    rest = manager.post("/workload/reassign", MultiDict([("tasks", visits[1]), ("tasks", visits[2]),
                                                         ("assignee", "other"), ("worker", "worker")]))
    assert rest.status_code == 302 and rest.headers["Location"].endswith("/workload")  # none left with them
    assert manager.get("/workload/workers/worker").status_code == 404


def test_a_manager_allocates_from_every_task_waiting_for_a_role(site, manager, monkeypatch):
    from service import workload
    from werkzeug.datastructures import MultiDict

    monkeypatch.setattr(workload, "PILE_TASKS", 1)
    waiting = [start(site, f"QUEUE-{n}") for n in range(3)]
    listed = manager.get("/workload")
    assert 'href="/workload/waiting?role=team_manager"' in listed.get_data(as_text=True)
    assert "All the tasks waiting for the team manager role" in page_text(listed)
    whole = page_text(manager.get("/workload/waiting?role=team_manager"))
    assert "Not yet taken: team manager" in whole and all(f"QUEUE-{n}" in whole for n in range(3))
    assert "3 tasks in your team's pathways that nobody has taken" in whole
    task = waiting[0]["tasks"][0]["id"]
    given = manager.post("/workload/reassign", MultiDict([("tasks", task), ("assignee", "manager"),
                                                          ("role", "team_manager")]))
    assert given.status_code == 302 and given.headers["Location"].endswith("/workload/waiting?role=team_manager")
    assert "QUEUE-0" not in page_text(manager.get(given.headers["Location"]))
    nobody = manager.post("/workload/reassign", MultiDict([("tasks", task), ("role", "team_manager")]))
    assert nobody.status_code == 422 and "Not yet taken: team manager" in page_text(nobody)
    monkeypatch.setattr(workload, "WAITING_COUNTED", 2)
    assert "2 or more tasks in your team's pathways" in page_text(manager.get("/workload/waiting?role=team_manager"))


def test_the_manager_views_counts_link_to_their_cases_and_errored_cases_retry(site, manager):
    allocated(site, "LIST-1")
    stuck = start(site, "STUCK-1")
    with site.app.app_context():
        in_council(db.session)
        db.session.execute(update(Case).where(Case.id == stuck["id"]).values(
            status="error", error={"element": "Task_Allocate", "message": "a test failure"}))
        db.session.commit()
    page = manager.get("/manager")
    body = page_text(page)
    assert "Stopped on an error (1)" in body and "STUCK-1" in body and "a test failure" in body
    link = re.search(r'href="(/manager/cases\?[^"]*status=active[^"]*)"', page.get_data(as_text=True))[1]
    listed = page_text(manager.get(link.replace("&amp;", "&")))
    assert "LIST-1" in listed and "STUCK-1" not in listed
    retried = manager.post(f"/manager/cases/{stuck['id']}/retry")
    assert retried.status_code == 302
    assert "Case STUCK-1 was run again and goes on" in page_text(manager.get("/manager"))
    with site.app.app_context(), everything():
        assert db.session.get(Case, stuck["id"]).status == "active"


def test_add_a_note_from_the_case_page(site, manager):
    case = start(site, "NOTE-1")
    form = manager.get(f"/cases/{case['id']}/notes/new")
    assert form.status_code == 200 and "What kind of note is this?" in page_text(form)
    wrong = manager.post(f"/cases/{case['id']}/notes/new", {"happened_on-day": "31", "happened_on-month": "2",
                                                             "happened_on-year": "2027", "text": "Met at school"})
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert 'href="#kind"' in html and 'href="#happened_on-day"' in html and "Met at school" in html
    done = manager.post(f"/cases/{case['id']}/notes/new", {"kind": "meeting", "happened_on-day": "2",
                                                            "happened_on-month": "1", "happened_on-year": "2027",
                                                            "who": "Head teacher", "text": "Met at <b>school</b>"})
    assert done.status_code == 302
    page = manager.get(f"/cases/{case['id']}")
    body = page_text(page)
    assert "Meeting with Head teacher" in body and "2 January 2027" in body and "Met at <b>school</b>" in body
    assert "Met at <b>" not in page.get_data(as_text=True)  # shown as text


def test_upload_a_document_from_the_case_page_and_download_it(site, manager):
    case = start(site, "DOC-1")
    form = manager.get(f"/cases/{case['id']}/documents/new")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.get_data(as_text=True)
    assert "Genogram" in page_text(form)  # the pathway's checklist items
    refused = manager.post(f"/cases/{case['id']}/documents/new",
                           {"title": "Minutes", "file": (io.BytesIO(EXE), "minutes.pdf")},
                           content_type="multipart/form-data")
    assert refused.status_code == 415
    assert 'href="#file"' in refused.get_data(as_text=True) and "The file must be a PDF" in page_text(refused)
    nothing = manager.post(f"/cases/{case['id']}/documents/new", {"title": "Minutes"}, content_type="multipart/form-data")
    assert nothing.status_code == 422 and "Choose a file to upload" in page_text(nothing)
    with site.app.app_context(), everything():
        assert db.session.scalars(select(CaseDocument)).all() == []
    done = manager.post(f"/cases/{case['id']}/documents/new",
                        {"title": "Family photo", "file": (io.BytesIO(PNG), "photo.png")},
                        content_type="multipart/form-data")
    assert done.status_code == 302
    page = manager.get(f"/cases/{case['id']}")
    link = re.search(r'href="(/cases/\d+/documents/\d+)"', page.get_data(as_text=True))[1]
    assert "Family photo" in page_text(page) and "PNG image" in page_text(page)
    got = manager.client.get(link, base_url=manager.base_url)  # bytes, not a page
    assert got.status_code == 200 and got.data == PNG
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    front = Browser(site.app)
    front.sign_in("front")
    assert front.get(link).status_code == 403
