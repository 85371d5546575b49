"""Open tasks as a list shows them (issue 16): plain rows, never ORM objects.

An inbox page is read far more often than anything else, and building an ORM object per listed task (with
its case, assignee and roles) was half its service time. A list reads one statement of just the columns it
shows (:func:`service.cases.open_tasks`), and what each task shows from its pathway's parsed diagram (its
form as the API gives it, whether it is an activity of an ad-hoc sub-process, the pathway's roles) is worked
out once per pathway version and kept on the app (:class:`PathwayFactsCache`, bounded).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.deployments import process_definition
from service.engine import runtime
from service.forms import FormDefinition, form_to_api
from service.lru import Lru
from service.models import ProcessVersion, TaskRole

CACHE = "listed_pathways"
NO_FORM: dict[str, Any] = {"fields": []}


@dataclass(frozen=True)
class PathwayFacts:
    """What the lists show of one pathway version's tasks, from its parsed diagram (immutable)."""

    roles: tuple[str, ...]
    forms: dict[str, dict[str, Any]]  # task name -> its form as the API shows it
    allocating: dict[str, FormDefinition]  # task name -> a form listing people (its council's, read per request)
    ad_hoc: dict[str, tuple[str, str]]  # task name -> the ad-hoc sub-process (id, name) it is an activity of

    @classmethod
    def of(cls, process) -> PathwayFacts:
        forms, allocating = {}, {}
        for name, form in process.task_forms.items():
            if form is not None and any(f.allocate_role for f in form.fields):
                allocating[name] = form
            else:
                forms[name] = form_to_api(form) if form is not None else NO_FORM
        return cls(tuple(process.roles), forms, allocating, dict(runtime.ad_hoc_activities(process)))


class PathwayFactsCache:
    """:class:`PathwayFacts` by (process version id, content hash), the least recently used dropped."""

    def __init__(self, size: int = 256) -> None:
        self._entries: Lru[tuple[int, str], PathwayFacts] = Lru(size)

    def get(self, session: Session, version_id: int, content_hash: str) -> PathwayFacts:
        key = (version_id, content_hash)
        found = self._entries.get(key)
        if found is None:
            found = PathwayFacts.of(process_definition(session, session.get(ProcessVersion, version_id)))
            self._entries.put(key, found)
        return found


def cache() -> PathwayFactsCache:
    return current_app.extensions.setdefault(CACHE, PathwayFactsCache())


@dataclass(frozen=True, slots=True)
class ListedTask:
    """An open task as a list shows it, with its case's reference and pathway and its assignee's names."""

    id: str
    case_id: int
    council_id: int
    name: str
    title: str
    lane: str | None
    assignee_id: int | None
    due_at: datetime | None
    created_at: datetime
    roles: list[str]
    reference: str
    process_key: str
    pathway: str  # the pathway's name
    assignee: str | None  # the assignee's user name
    assignee_display_name: str | None
    facts: PathwayFacts

    @property
    def assignee_label(self) -> str | None:
        return (self.assignee_display_name or self.assignee) if self.assignee_id is not None else None


def roles_column(postgres: bool, task_id) -> Any:
    """The roles of the task ``task_id`` (a column), aggregated in the same statement: an array on
    PostgreSQL, a JSON array on SQLite (read by :func:`_roles`)."""
    aggregate = func.array_agg(TaskRole.role) if postgres else func.json_group_array(TaskRole.role)
    return select(aggregate).where(TaskRole.task_id == task_id).scalar_subquery()


def _roles(value: Any) -> list[str]:
    if value is None:
        return []
    return sorted(json.loads(value) if isinstance(value, str) else value)


def rows_to_tasks(session: Session, rows) -> list[ListedTask]:
    """The statement's rows as :class:`ListedTask` (the row's columns in ListedTask's order, then the
    version id, its content hash and the roles); each pathway version's facts looked up once."""
    facts: dict[int, PathwayFacts] = {}
    found = []
    known = cache()
    for *columns, version_id, content_hash, roles in rows:
        shown = facts.get(version_id)
        if shown is None:
            shown = facts[version_id] = known.get(session, version_id, content_hash)
        found.append(ListedTask(*columns[:9], _roles(roles), *columns[9:], shown))
    return found


def form_json(session: Session, task: ListedTask, with_people: dict[tuple[int, str], dict[str, Any]]
              ) -> dict[str, Any]:
    """The task's form as the API shows it; a form that lists the council's people (allocation fields,
    :func:`service.workload.with_people`) is read once per request (``with_people``) for each such form."""
    form = task.facts.forms.get(task.name)
    if form is not None:
        return form
    allocating = task.facts.allocating.get(task.name)
    if allocating is None:
        return NO_FORM
    key = (id(task.facts), task.name)
    if key not in with_people:
        from service import workload

        with_people[key] = form_to_api(workload.with_people(session, allocating, task.council_id))
    return with_people[key]
