"""The task lists read plain rows (issue 16).

A list of tasks (the inbox and the team's tasks over the API and as pages, the workload) builds no ORM task
object, reads the tasks table in one statement whatever the page's length, and does not go back to a parsed
pathway for each request: what a listed task shows from its pathway (its form, whether it is an activity of
an ad-hoc sub-process) is kept per pathway version (``service.listed_tasks``). A listed task's JSON is the
task's own (``GET /tasks/<id>``), forms listing people and ad-hoc activities included. Timings are
``bench/scale.py``'s.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from conftest import FIXTURES
from service import listed_tasks
from service.models import OpenTask
from test_constructs_api import Walk, ad_hoc, deployed
from test_lists_cost_their_page import PATHWAY, Statements, _browsers, _open_cases, _users

TASK_LISTS = [("dana", "/tasks"), ("worker", "/tasks"), ("manager", "/tasks?overdue=true"), ("manager", "/workload")]
TASK_PAGES = [("dana", "/"), ("worker", "/"), ("manager", "/manager"), ("manager", "/workload")]


@contextmanager
def tasks_built():
    """How many ``OpenTask`` ORM objects are loaded from rows meanwhile (a list at one per task: none)."""
    built = []

    def count(target, context):
        built.append(target.id)

    event.listen(OpenTask, "load", count)
    try:
        yield built
    finally:
        event.remove(OpenTask, "load", count)


def _reading_tasks(statements) -> list[str]:
    words = [" " + " ".join(s.lower().split()) for s, _params in statements]
    return [w for w in words if w.lstrip().startswith(("select", "with")) and (" from tasks" in w or " join tasks" in w)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_task_list_builds_no_task_objects_and_reads_the_tasks_once(api, monkeypatch):
    api.deploy(PATHWAY)
    _users(api)
    browsers = _browsers(api)
    _open_cases(api, 0, 6)
    for who, path in TASK_LISTS:
        assert api.get(path, as_=who).status_code == 200, path  # warm: the pathway's facts are kept
    parsed = []
    monkeypatch.setattr(listed_tasks, "process_definition", lambda *args: parsed.append(args))
    counted = Statements(api.app)
    shown = {}
    for who, path in TASK_LISTS:
        with tasks_built() as built, counted:
            response = api.get(path, as_=who)
        assert response.status_code == 200 and built == [], (path, built)
        # the page of tasks; for the workload the page of workers, the roles' piles, the piles' tasks, the totals
        assert len(_reading_tasks(counted.seen)) == (4 if path == "/workload" else 1), (path, counted.seen)
        shown[f"{who} {path}"] = response.json
    assert len(shown["dana /tasks"]) == 12 and len(shown["worker /tasks"]) == 6, shown  # hers, and the pool
    assert shown["manager /workload"]["total"] == 12
    for who, path in TASK_PAGES:
        assert browsers[who].get(path).status_code == 200, path
        with tasks_built() as built:
            assert browsers[who].get(path).status_code == 200, path
        assert built == [], (path, built)
    assert parsed == []  # no list went back to the parsed pathway


def _listed_as_their_own(api, who: str) -> list[dict]:
    listed = api.get("/tasks", as_=who)
    assert listed.status_code == 200, listed.json
    for task in listed.json:
        own = api.get(f"/tasks/{task['id']}", as_=who)
        assert own.status_code == 200, own.json
        assert task == own.json
    return listed.json


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_listed_task_shows_what_the_task_itself_shows_forms_listing_people_and_ad_hoc_activities(api):
    assert api.deploy(FIXTURES / "allocation").status_code == 201
    api.as_role("social_worker")
    for n in range(2):
        started = api.post("/cases", json={"process": "test_allocation", "reference": f"ALLOC-{n}", "data": {}},
                           as_="manager")
        assert started.status_code == 201, started.json
    allocations = _listed_as_their_own(api, "manager")
    assert len(allocations) == 2
    people = [f for f in allocations[0]["form"]["fields"] if f["key"] == "allocated_worker"]
    assert people and people[0]["type"] == "select" and people[0]["options"], allocations[0]["form"]

    deployed(api, ad_hoc=ad_hoc())
    Walk(api, "ad_hoc")
    activities = [t for t in _listed_as_their_own(api, "worker") if "ad_hoc" in t]
    assert sorted(t["name"] for t in activities) == ["Task_CallGp", "Task_CallSchool"]
    assert activities[0]["ad_hoc"]["element"] == "SubProcess_Checks"
