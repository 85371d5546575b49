"""Rehearsals: an analyst runs a pathway version (a draft too) as a sandbox case, on a clock of its own.

A rehearsal is a :class:`service.sandbox.Sandbox` kept whole, as its JSON, in a row of ``rehearsals``
(encrypted at rest): the engine alone runs it (``service.engine.runtime``), so it is never a row of ``cases``,
``tasks``, ``pending_timers`` or ``notifications``, and never shows in a case list, a search, an inbox, the
timer sweep, a notification or an email. Its clock moves only when the analyst moves it ("+1 day", "+1 week",
"+4 weeks", to the next timer, to a date): the timers due on the way fire, and the reminders and escalations
they would have sent are listed in words, as the service would have worded them.

The analyst acts as any role of the pathway, and completes each task through the same form and the same
checks as the task pages (``service.web.formview``, ``cases.validated_answers``). What they did is the
sandbox's ``steps``: "Record as a scenario" makes it a scenario file (``service.scenarios.from_sandbox``),
downloaded or added to the pathway as a new deployment through the ordinary deploy path
(``service.pathway_versions.deploy``: a draft where the council requires approval).

Who may: ``policy.may_rehearse`` (the council's analysts, approvers and admin; another council's rehearsal is
not there: 404); adding to the pathway: ``policy.require_deployer``. The acting council's calendar counts the
working days (``tenancy.act_for``, as for every request).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from service import cases as case_service
from service import deployments, pathway_versions, policy, workload
from service.engine import clock
from service.engine.bundle import ProcessDefinition
from service.errors import InvalidData, NotFound
from service.limits import MAX_INT
from service.models import ProcessVersion, Rehearsal
from service.policy import Actor

MAX_NAME = 200
#: The clock moves the pages offer (the API takes any the sandbox reads, e.g. "+3 days", "+5 working days").
CLOCK_MOVES = ("+1 day", "+1 week", "+4 weeks")


def _sandbox_module():
    from service import sandbox  # helper "sandbox"'s module (no HTTP, no database)

    return sandbox


def _limits():
    return current_app.extensions["engine_limits"]


@dataclass
class Opened:
    """A rehearsal as the pages and the API show it: the row, its version's process and the sandbox's view."""

    rehearsal: Rehearsal
    process: ProcessDefinition
    sandbox: Any
    view: Any

    @property
    def version(self) -> ProcessVersion:
        return self.rehearsal.process


# -- finding -------------------------------------------------------------------------------------

def _version(session: Session, version_id: Any, actor: Actor) -> ProcessVersion:
    fits = isinstance(version_id, int) and not isinstance(version_id, bool) and 0 < version_id <= MAX_INT
    version = session.get(ProcessVersion, version_id) if fits else None  # 2**63 is no id: never a database error
    if version is None:  # another council's version is not there (service.tenancy): 404 before any rule
        raise NotFound(f"there is no pathway version {version_id}")
    policy.require_rehearser(actor)
    return version


def _row(session: Session, rehearsal_id: int, actor: Actor) -> Rehearsal:
    row = session.scalars(select(Rehearsal).where(Rehearsal.id == rehearsal_id).options(undefer(Rehearsal.state))
                          .execution_options(populate_existing=True)).first()
    if row is None:
        raise NotFound(f"there is no rehearsal {rehearsal_id}")
    policy.require_rehearser(actor)
    return row


def _open(session: Session, row: Rehearsal) -> Opened:
    process = deployments.process_definition(session, row.process)
    box = _sandbox_module().Sandbox.from_json(process, row.state, limits=_limits())
    return Opened(row, process, box, box.view())


def get(session: Session, rehearsal_id: int, actor: Actor) -> Opened:
    return _open(session, _row(session, rehearsal_id, actor))


def list_rehearsals(session: Session, actor: Actor, version_id: int | None = None) -> list[Rehearsal]:
    """The council's rehearsals (of one version), the most recently used first. Their state is not read."""
    policy.require_rehearser(actor)
    query = select(Rehearsal).order_by(Rehearsal.updated_at.desc(), Rehearsal.id.desc())
    if version_id is not None:
        if not 0 < version_id <= MAX_INT:
            return []
        query = query.where(Rehearsal.process_version_id == version_id)
    return list(session.scalars(query.limit(200)))


def version_for_start(session: Session, version_id: int, actor: Actor) -> tuple[ProcessVersion, ProcessDefinition]:
    """The version to rehearse (any status: a draft is what most needs rehearsing) and its process."""
    version = _version(session, version_id, actor)
    return version, deployments.process_definition(session, version)


def start_form(session: Session, process: ProcessDefinition, actor: Actor):
    """The pathway's start form as the start pages show it (allocation fields list the council's people)."""
    return workload.with_people(session, process.start_form, actor.council_id)


def task_form(session: Session, opened: Opened, element: str, actor: Actor):
    """A task's form as the task pages show it (allocation fields list the council's people)."""
    return workload.with_people(session, opened.process.form_of(element), actor.council_id)


def roles_of(process: ProcessDefinition) -> list[str]:
    """The roles the analyst may act as: the pathway's lanes and candidate groups, and who else may start it."""
    return sorted({*process.roles, *process.starter_roles})


# -- acting --------------------------------------------------------------------------------------

def _name(name: Any, version: ProcessVersion) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if name is not None and not isinstance(name, str):
        raise InvalidData("the name is text", {"name": "Give the rehearsal's name as text"})
    if len(text) > MAX_NAME:
        raise InvalidData("the name is too long", {"name": f"Give a name of at most {MAX_NAME} characters"})
    return text or f"Rehearsal of {version.name}, version {version.version}"


def _role(role: Any, allowed: list[str]) -> str | None:
    if role in (None, ""):
        return None
    if role not in allowed:
        raise InvalidData("that is not a role of this step", {
            "role": f"Choose one of the roles {', '.join(allowed) or '(none)'}, not '{role}'"})
    return role


def start(session: Session, actor: Actor, version_id: int, data: Any, *, name: Any = None, role: Any = None,
          at: datetime | None = None, source: str = "json") -> Opened:
    """Start a rehearsal of a version with the start form's answers (checked as a real start checks them: 422
    naming each field), acting as ``role``, the sandbox clock at ``at`` (default: now)."""
    version = _version(session, version_id, actor)
    process = deployments.process_definition(session, version)
    sandbox = _sandbox_module()
    title = _name(name, version)
    role = _role(role, roles_of(process))
    answers = case_service.validated_answers(start_form(session, process, actor), data, source=source)
    moment = clock.as_utc(at) if at is not None else clock.now().replace(second=0, microsecond=0)
    box = sandbox.Sandbox.start(process, answers, moment, role=role, limits=_limits())
    row = Rehearsal(process=version, process_version_id=version.id, created_by_id=actor.user_id, name=title,
                    state=box.to_json(), created_at=clock.now(), updated_at=clock.now())
    session.add(row)
    session.flush()
    return Opened(row, process, box, box.view())


def _save(opened: Opened) -> Opened:
    opened.rehearsal.state = opened.sandbox.to_json()
    opened.rehearsal.updated_at = clock.now()
    opened.view = opened.sandbox.view()
    return opened


def open_task(opened: Opened, task_id: str) -> dict[str, Any]:
    """The sandbox's open task with this id (or element id); 404 when it is not open (done, or never was)."""
    for task in opened.view.tasks:
        if task.get("id") == task_id or task.get("element") == task_id:
            return task
    raise NotFound(f"the rehearsal has no open task '{task_id}' (it may be done already)")


def complete(session: Session, actor: Actor, rehearsal_id: int, task_id: str, data: Any, *, role: Any = None,
             source: str = "json") -> Opened:
    """Complete an open task of the rehearsal with its form's answers, checked exactly as the task pages check
    them (422 naming each field), as ``role`` (one of the task's roles)."""
    opened = get(session, rehearsal_id, actor)
    task = open_task(opened, task_id)
    role = _role(role, list(task.get("roles") or [])) or ((task.get("roles") or [None])[0])
    answers = case_service.validated_answers(task_form(session, opened, task["element"], actor), data,
                                             known=opened.view.data, source=source)
    opened.sandbox.complete(task["id"], answers, role=role)
    return _save(opened)


def parse_clock(move: Any) -> dict[str, Any]:
    """A clock move as the scenario files write it: "+1 week" (any the sandbox reads), "next timer", or an ISO
    instant or date (a date: 09:00 London that day). Returns ``Sandbox.move_clock``'s keyword arguments."""
    if not isinstance(move, str) or not move.strip():
        raise InvalidData("say how to move the clock", {"clock": 'Give "+1 day", "+1 week", "+4 weeks", '
                                                                 '"next timer" or a date'})
    text = move.strip()
    if text.lower() in ("next timer", "next_timer", "to the next timer"):
        return {"next_timer": True}
    if text.startswith("+"):
        return {"by": text}
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidData("that is not a clock move", {"clock": f"'{text[:60]}' is not a clock move: give "
                                                                f"'+1 week', 'next timer' or a date"}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.LONDON)
        if len(text) == 10:
            moment = moment.replace(hour=9)
    return {"to": clock.as_utc(moment)}


def move_clock(session: Session, actor: Actor, rehearsal_id: int, move: Any) -> tuple[Opened, list[str]]:
    """Move the rehearsal's clock; the timers due on the way fire in order. Returns what fired."""
    opened = get(session, rehearsal_id, actor)
    how = parse_clock(move)
    if "to" in how and how["to"] < opened.view.now:
        raise InvalidData("the clock does not go back", {"clock": "Choose a date after the sandbox's clock: a "
                                                                  "rehearsal's clock only goes forward"})
    fired = opened.sandbox.move_clock(**how)
    return _save(opened), list(fired or [])


def send(session: Session, actor: Actor, rehearsal_id: int, kind: str, name: Any, data: Any = None) -> Opened:
    """Send the rehearsal a message or a signal it waits for (``kind``: "message" or "signal")."""
    opened = get(session, rehearsal_id, actor)
    if not isinstance(name, str) or not name.strip():
        raise InvalidData(f"name the {kind}", {"name": f"Give the {kind}'s name"})
    if data is not None and not isinstance(data, dict):
        raise InvalidData(f"the {kind}'s data is a set of named values", {"data": "Give a JSON object"})
    waiting = opened.view.messages if kind == "message" else opened.view.signals
    if name not in waiting:
        raise InvalidData(f"the rehearsal does not wait for that {kind}", {
            "name": f"The case waits for no {kind} '{name[:80]}' now"
                    + (f" (it waits for {', '.join(waiting)})" if waiting else "")})
    (opened.sandbox.message if kind == "message" else opened.sandbox.signal)(name, data or {})
    return _save(opened)


def act(session: Session, actor: Actor, rehearsal_id: int, step: Any) -> tuple[Opened, list[str]]:
    """One step written as a scenario file writes it (the API's actions): ``{"complete": element or task id,
    "as": role, "data": {...}}``, ``{"clock": "+1 week" | "next timer" | ISO}``, ``{"message": name, "data"}``,
    ``{"signal": name, "data"}``."""
    row = _row(session, rehearsal_id, actor)  # 404 / 403 before the step is read
    if not isinstance(step, dict):
        raise InvalidData("a step is a JSON object", {"": 'Send {"complete": ...}, {"clock": ...}, '
                                                          '{"message": ...} or {"signal": ...}'})
    kinds = [k for k in ("complete", "clock", "message", "signal") if k in step]
    if len(kinds) != 1:
        raise InvalidData("a step does one thing", {"": 'Send exactly one of "complete", "clock", "message", '
                                                         '"signal"'})
    kind = kinds[0]
    if kind == "complete":
        if not isinstance(step["complete"], str):
            raise InvalidData("name the task", {"complete": "Give the task's element id or id"})
        return complete(session, actor, row.id, step["complete"], step.get("data") or {}, role=step.get("as")), []
    if kind == "clock":
        return move_clock(session, actor, row.id, step["clock"])
    return send(session, actor, row.id, kind, step[kind], step.get("data")), []


def unused_since(session: Session, before: datetime) -> list[Rehearsal]:
    """The acting council's rehearsals nobody has used since ``before`` (their state is not read)."""
    return list(session.scalars(select(Rehearsal).where(Rehearsal.updated_at < before).order_by(Rehearsal.id)))


def remove_unused(session: Session, before: datetime) -> list[Rehearsal]:
    """Remove the acting council's rehearsals unused since ``before``: the answers typed into one may look like a
    real child's, and a rehearsal is never a case, so nothing of it needs keeping (``flask data erase-due``)."""
    gone = unused_since(session, before)
    for row in gone:
        session.delete(row)
    return gone


# -- recording -----------------------------------------------------------------------------------

def scenario_name(opened: Opened, name: Any) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if len(text) > MAX_NAME:
        raise InvalidData("the scenario's name is too long", {"scenario": f"Give at most {MAX_NAME} characters"})
    return text or opened.rehearsal.name


def scenario(session: Session, actor: Actor, rehearsal_id: int, name: Any = None) -> tuple[str, str]:
    """The rehearsal as a scenario file: (file name, its JSON text), from what was done so far and what the
    sandbox shows now as its expectations (``service.scenarios.from_sandbox``)."""
    from service import scenarios

    opened = get(session, rehearsal_id, actor)
    title = scenario_name(opened, name)
    return scenarios.file_name(opened.process.key, title), scenarios.from_sandbox(opened.sandbox, title)


def add_to_pathway(session: Session, actor: Actor, rehearsal_id: int, name: Any = None):
    """Deploy the rehearsal's scenario file with the pathway's files (``pathway_versions.deploy``: checked like
    any upload; a draft for a second person to publish where the council requires approval)."""
    _row(session, rehearsal_id, actor)  # another council's: 404, whoever asks; then 403 outside the workspace
    policy.require_deployer(actor)
    filename, text = scenario(session, actor, rehearsal_id, name)
    return pathway_versions.deploy(session, actor, {filename: text.encode("utf-8")},
                                   name=f"Scenario recorded from a rehearsal: {filename}", source="rehearsal")


def delete(session: Session, actor: Actor, rehearsal_id: int) -> None:
    row = _row(session, rehearsal_id, actor)
    session.delete(row)


# -- the JSON the API answers ---------------------------------------------------------------------

def as_json(opened: Opened, fired: list[str] | None = None) -> dict[str, Any]:
    row, view = opened.rehearsal, opened.view
    answer = {
        "id": row.id, "name": row.name,
        "version": {"id": row.process.id, "key": row.process.key, "version": row.process.version,
                    "name": row.process.name, "status": row.process.status},
        "created_by": row.creator.name if row.creator is not None else None,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "now": view.now.isoformat(), "status": view.status, "outcome": view.outcome, "error": view.error,
        "tasks": view.tasks, "timers": view.timers, "notifications": view.notifications, "path": view.path,
        "messages": view.messages, "signals": view.signals, "data": view.data,
        "steps": list(getattr(opened.sandbox, "steps", []) or []),
    }
    if fired is not None:
        answer["fired"] = fired
    not_changed = getattr(opened.sandbox, "last_not_changed", None)
    if not_changed:  # a message adds answers and never changes one: say which it left as they were
        answer["not_changed"] = not_changed
    return answer


def summary_json(row: Rehearsal) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "version_id": row.process_version_id, "key": row.process.key,
            "version": row.process.version, "created_by": row.creator.name if row.creator is not None else None,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def due_in_words(due_at: str | None, now: datetime) -> tuple[datetime | None, bool]:
    """A sandbox task's due instant and whether it is overdue by the sandbox clock."""
    if not due_at:
        return None, False
    try:
        moment = clock.as_utc(datetime.fromisoformat(due_at))
    except ValueError:
        return None, False
    return moment, moment < now
