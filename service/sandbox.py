"""Sandbox cases: a pathway version run by the engine alone, on a clock of its own (issue 17, items 5 and 6).

A sandbox case is never a row of ``cases``, ``tasks``, ``pending_timers`` or ``notifications``: it lives in
memory (and as the JSON text of :meth:`Sandbox.to_json`, which a rehearsal keeps in its own table), so sandbox
and real cases cannot mix. No HTTP, no database here.

What it does is what the service does to a real case, by the service's own code:

* every engine call runs at the sandbox's instant (``clock.clock_at``), in the calendar in force (the acting
  council's, set by ``tenancy.act_for``), so due dates and working days count from the sandbox clock;
* answers are checked by the service's own form validation (``cases.validated_answers``) and safeguarding
  guards (consent, significant harm referred to the front door, voluntary services need consent);
* moving the clock fires each timer at its own due time, earliest first (what the running timer service does),
  and a timer already due when a step ends fires at once (the timer service's next sweep would);
* a fired timer with ``notify`` becomes the notification the service would send, in its wording
  (``notifications.timer_wording``); an urgent step gets the service's one-hour escalation
  (``safeguarding.escalation_wording``), out of office hours for the emergency duty team too.

What it leaves out: the people (a reminder names the roles it would reach, not users; an allocation field
accepts any name), and other cases (a message or signal the case throws reaches no other case).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from service import cases, notifications, policy, safeguarding
from service.engine import calendar, clock, conventions, runtime
from service.engine.bundle import ProcessDefinition
from service.engine.clock import LONDON
from service.engine.limits import Limits
from service.engine.parser import role_key
from service.errors import ServiceError

#: The format :meth:`Sandbox.to_json` writes and :meth:`Sandbox.from_json` reads.
FORMAT = "sandbox-1"
#: A sandbox case's reference in the wording of its notifications.
REFERENCE = "SANDBOX"
#: Timers one clock move may fire: a repeating timer of every minute over a year must not hang the page.
MAX_FIRINGS = 2000
#: What the escalation of an urgent step is called (the service's own timer name).
ESCALATION = safeguarding.ESCALATION_TIMER


class SandboxError(ServiceError):
    """What the sandbox refuses, in words naming the step, element or field. ``errors``: field -> message."""

    status = 422

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message, errors=errors or {})
        self.errors = errors or {}


@dataclass
class SandboxView:
    now: datetime                 # the sandbox clock
    status: str                   # "active" | "completed" | "error"
    outcome: str | None
    error: str | None             # element and reason when status == "error"
    tasks: list[dict]             # {"id", "element", "title", "roles", "due_at" (ISO or None), "form"}
    timers: list[dict]            # {"id", "element", "title", "due_at" (ISO), "reminder": bool}
    notifications: list[dict]     # {"at", "element", "title", "roles", "text"} (+ "kind", "subject"), newest last
    path: list[str]               # element ids run so far, in order
    messages: list[str]           # message names the case waits for
    signals: list[str]
    data: dict


_BY = re.compile(r"^\s*\+?\s*(\d+)\s*(working\s+days?|minutes?|hours?|days?|weeks?|months?|years?)\s*$", re.I)


def clock_move(text: str, start: datetime) -> datetime:
    """The instant ``text`` ("+1 day", "+5 working days", "+2 months", "+3 hours") after ``start``, in London
    wall time (a day after 09:00 is 09:00 across a clock change); working days in the calendar in force."""
    found = _BY.match(text or "")
    if not found:
        raise SandboxError(f"'{text}' is not a clock move: write '+1 day', '+3 days', '+4 weeks', '+2 months', "
                           f"'+5 working days' or '+2 hours'")
    count, unit = int(found.group(1)), found.group(2).lower()
    if unit.startswith("working"):
        with clock.clock_at(start):
            return clock.as_utc(calendar.working_days(count, start.astimezone(LONDON)))
    unit = unit.rstrip("s") + "s"
    if unit in ("minutes", "hours"):
        return start + timedelta(**{unit: count})
    local = start.astimezone(LONDON).replace(tzinfo=None)
    return clock.as_utc((local + relativedelta(**{unit: count})).replace(tzinfo=LONDON))


class Sandbox:
    """One sandbox case of ``process``. Build it with :meth:`start` or :meth:`from_json`."""

    steps: list[dict]
    #: Keep the case's last good state across a step that fails, to go on from it (a rehearsal does). A scenario
    #: run stops at a failing step, and saves the state's copy before each step (a sixth of its time).
    restorable = True

    def __init__(self, process: ProcessDefinition, limits: Limits | None = None) -> None:
        self.process = process
        self.limits = limits
        self.workflow = None
        self.journal = None
        self.now: datetime = clock.now()
        self.status = "active"
        self.outcome: str | None = None
        self.error: str | None = None
        self.data: dict[str, Any] = {}
        self.steps = []
        self.started: dict[str, Any] = {}
        self.notifications: list[dict] = []
        self.path: list[str] = []
        #: Urgent steps open: task id -> {"element", "title", "due_at", "roles", "escalated"} (``safeguarding``).
        self.urgent: dict[str, dict] = {}
        self._snap: runtime.Snapshot | None = None
        #: What the latest action fired and notified (element ids), for the scenario runner.
        self.last_fired: list[str] = []
        self.last_notified: list[str] = []
        self.last_not_changed: list[str] = []  # answers the last message sent but could not change

    # -- building -----------------------------------------------------------------------------------

    @classmethod
    def start(cls, process: ProcessDefinition, data: dict, at: datetime, *, role: str | None = None,
              limits: Limits | None = None) -> Sandbox:
        """A sandbox case of ``process`` started at ``at`` with the start form's ``data``, as ``role``."""
        box = cls(process, limits)
        box.now = clock.as_utc(at)
        box.started = {"at": box.now.isoformat(), **({"as": role} if role else {}), "data": data or {}}
        if role and not policy.may_start(process.roles, process.starter_roles, policy.Actor("sandbox", (role,))):
            raise SandboxError(f"the role '{role}' may not start '{process.name}': it needs one of "
                               f"{', '.join(sorted({*process.roles, *process.starter_roles})) or 'no role'}")
        answers = box._checked(process.start_form, data, known=None, where="the start form")
        try:
            safeguarding.check_start(process, answers)
        except ServiceError as refused:
            raise SandboxError(f"the case cannot start: {refused.message}",
                               getattr(refused, "errors", None)) from None
        box.last_fired, box.last_notified = [], []
        with clock.clock_at(box.now):
            try:
                box.workflow, snap = runtime.start(process, answers, limits)
            except runtime.EngineError as error:
                box.workflow = runtime.new_workflow(process, answers, limits)
                box.journal = box.workflow.script_engine
                box.data = runtime.json_safe(answers)
                box._stopped(error)
                return box
            box.journal = box.workflow.script_engine
            box.data = cases.known_data({}, snap.data, answers)
            box._took(snap, answers)
        box._refer_significant_harm(answers, "the start form")
        box._fire_due()
        box._record(None)
        return box

    @classmethod
    def from_json(cls, process: ProcessDefinition, text: str, *, limits: Limits | None = None) -> Sandbox:
        """The sandbox :meth:`to_json` wrote, on ``process`` (the same pathway version)."""
        try:
            saved = json.loads(text)
        except (TypeError, ValueError):
            raise SandboxError("the saved sandbox is not JSON") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise SandboxError(f"the saved sandbox is not in format {FORMAT}")
        if saved.get("process") != process.key:
            raise SandboxError(f"the saved sandbox is a case of '{saved.get('process')}', not of '{process.key}'")
        box = cls(process, limits)
        box.workflow, box.journal = runtime.load(process, saved["state"], limits=limits)
        box.now = datetime.fromisoformat(saved["now"])
        box.status, box.outcome, box.error = saved["status"], saved.get("outcome"), saved.get("error")
        box.data, box.steps, box.started = saved.get("data", {}), saved.get("steps", []), saved.get("started", {})
        box.notifications, box.path = saved.get("notifications", []), saved.get("path", [])
        box.urgent = saved.get("urgent", {})
        with clock.clock_at(box.now):
            box._snap = runtime.snapshot(box.workflow)
        return box

    def to_json(self) -> str:
        """The whole sandbox: engine state, clock, steps, notifications, path."""
        return json.dumps({
            "format": FORMAT, "process": self.process.key, "state": runtime.dump(self.workflow),
            "now": self.now.isoformat(), "status": self.status, "outcome": self.outcome, "error": self.error,
            "data": self.data, "steps": self.steps, "started": self.started, "notifications": self.notifications,
            "path": self.path, "urgent": self.urgent,
        }, separators=(",", ":"), default=str)

    # -- acting -------------------------------------------------------------------------------------

    def complete(self, element: str, data: dict, role: str | None = None) -> None:
        """Complete the open task of BPMN element id ``element`` (or task id) with ``data``, validated exactly as
        the service validates a task's form (service/forms); ``role`` must be one of the task's roles."""
        self._active()
        task = self._task(element)
        roles = self._roles(task)
        if role and roles and role not in roles:
            raise SandboxError(f"the task '{task.title}' ({task.name}) is for the role "
                               f"{' or '.join(roles)}, not '{role}'")
        answers = self._checked(self.process.form_of(task.name), data, known=self.data,
                                where=f"the task '{task.title}' ({task.name})")
        self._act(lambda: runtime.complete_task(self.workflow, self.journal, task.id, answers), answers,
                  where=task.title)
        self._record({"complete": task.name, **({"as": role} if role else {}), "data": data or {}})

    def message(self, name: str, data: dict | None = None) -> None:
        """Deliver the message ``name`` (with ``data``) to the case, as ``POST /cases/<id>/messages`` does."""
        self._active()
        if name not in self._snap.messages:
            raise SandboxError(f"nothing in the case waits for the message '{name}'"
                               + (f" (it waits for {', '.join(self._snap.messages)})" if self._snap.messages else ""))
        try:  # what the service's message endpoint delivers: never an answer the case already has
            payload, kept = cases.message_payload(_Plain(data=self.data), data or {})
        except ServiceError as refused:
            raise SandboxError(f"the message '{name}': {refused.message}", getattr(refused, "errors", None)) from None
        self._act(lambda: runtime.deliver_message(self.workflow, self.journal, name, payload), None)
        self.last_not_changed = sorted(kept)  # said back to the analyst, as the service audits it for a real case
        self._record({"message": name, **({"data": data} if data else {})})

    def signal(self, name: str, data: dict | None = None) -> None:
        """Let the case catch the signal ``name``, as a broadcast signal reaches it."""
        self._active()
        if name not in self._snap.waiting_signals:
            raise SandboxError(f"nothing in the case waits for the signal '{name}'")
        self._act(lambda: runtime.deliver_signal(self.workflow, self.journal, name,
                                                 runtime.json_safe(data or {})), None)
        self._record({"signal": name, **({"data": data} if data else {})})

    def move_clock(self, *, by: str | None = None, to: datetime | None = None, next_timer: bool = False) -> list[str]:
        """Move the sandbox clock: by "+1 day", "+3 days", "+4 weeks", "+2 months", "+5 working days"; to an
        instant; or to the next pending timer's due time. Timers due on the way fire in due order, each at its
        own due time (an escalation after a reminder fires after it). Returns the element ids that fired."""
        if sum(x is not None and x is not False for x in (by, to, next_timer)) != 1:
            raise SandboxError("move the clock by a period, to an instant, or to the next timer (one of them)")
        if next_timer:
            due = self._next_due()
            if due is None:
                raise SandboxError("no timer is waiting in the case")
            target, step = max(due, self.now), {"clock": "next timer"}
        elif by is not None:
            target, step = clock_move(by, self.now), {"clock": by}
        else:
            target = clock.as_utc(to)
            step = {"clock": target.isoformat()}
        if target < self.now:
            raise SandboxError(f"the sandbox clock only moves on: it is {self.now.isoformat()}, "
                               f"not back to {target.isoformat()}")
        self.last_fired, self.last_notified = [], []
        self._fire_until(target)
        self.now = target
        self._record(step)
        return list(self.last_fired)

    # -- reading ------------------------------------------------------------------------------------

    def view(self) -> SandboxView:
        snap = self._snap
        tasks, timers = [], []
        if snap is not None and self.status != "completed":
            for task in snap.tasks:
                form = self.process.form_of(task.name)
                due = self._due_at(task)
                tasks.append({"id": task.id, "element": task.name, "title": task.title, "roles": self._roles(task),
                              "due_at": due.isoformat() if due else None, "form": form.id if form else None})
            for timer in snap.timers:
                timers.append({"id": timer.id, "element": timer.name, "title": timer.title,
                               "due_at": timer.due_at.isoformat(), "reminder": bool(timer.properties.get("notify"))})
        for task_id, urgent in self.urgent.items():
            if urgent["escalated"]:
                continue
            timers.append({"id": f"escalation:{task_id}", "element": ESCALATION,
                           "title": f"Escalate if nobody has picked up: {urgent['title']}"[:255],
                           "due_at": urgent["due_at"], "reminder": True})
        timers.sort(key=lambda t: t["due_at"])
        return SandboxView(now=self.now, status=self.status, outcome=self.outcome, error=self.error, tasks=tasks,
                           timers=timers, notifications=list(self.notifications), path=list(self.path),
                           messages=list(snap.messages) if snap and self.status == "active" else [],
                           signals=list(snap.waiting_signals) if snap and self.status == "active" else [],
                           data=dict(self.data))

    # -- inside -------------------------------------------------------------------------------------

    def _active(self) -> None:
        if self.status == "completed":
            raise SandboxError(f"the case has ended (outcome {self.outcome or 'none'})")
        if self.status == "error":
            raise SandboxError(f"the case stopped on an error: {self.error}")

    def _task(self, element: str) -> runtime.OpenTask:
        for task in self._snap.tasks:
            if element in (task.name, task.id):
                return task
        open_now = ", ".join(f"{t.name} ({t.title})" for t in self._snap.tasks) or "none"
        raise SandboxError(f"no task of '{element}' is open (open tasks: {open_now})")

    def _roles(self, task: runtime.OpenTask) -> list[str]:
        urgent = self.urgent.get(task.id)
        return list(urgent["roles"]) if urgent else list(task.roles)

    def _due_at(self, task: runtime.OpenTask) -> datetime | None:
        urgent = self.urgent.get(task.id)
        return datetime.fromisoformat(urgent["due_at"]) if urgent else task.due_at

    def _checked(self, form, data: Any, *, known: dict | None, where: str) -> dict[str, Any]:
        try:
            return cases.validated_answers(form, data, known=known)
        except ServiceError as refused:
            errors = getattr(refused, "errors", None) or {}
            said = "; ".join(f"{key or 'data'}: {message}" for key, message in errors.items())
            raise SandboxError(f"{where}: {refused.message}" + (f" ({said})" if said else ""), errors) from None

    def _act(self, action, answers: dict | None, where: str | None = None) -> None:
        """Do an engine action at the sandbox's instant; the case keeps its last good state if it fails."""
        before = runtime.dump(self.workflow) if self.restorable else None
        self.last_fired, self.last_notified, self.last_not_changed = [], [], []
        with clock.clock_at(self.now):
            try:
                snap = action()
            except runtime.TaskNotOpen:
                raise SandboxError("the task is no longer open") from None
            except runtime.NothingWaits as nothing:
                raise SandboxError(f"nothing in the case waits for '{nothing}'") from None
            except runtime.EngineError as error:
                self._restore(before)
                self._stopped(error)
                return
            try:
                safeguarding.check_step(self.process, snap.path, snap.data)
            except ServiceError as refused:
                self._restore(before)
                raise SandboxError(refused.message, getattr(refused, "errors", None)) from None
            self.data = cases.known_data(self.data, snap.data, answers)
            self._took(snap, answers)
        if answers and where:
            self._refer_significant_harm(answers, where)
        self._fire_due()

    def _record(self, step: dict | None) -> None:
        """Keep a step done, with what it led to as its expectation (a recorded rehearsal checks it on replay)."""
        expect: dict[str, Any] = {"tasks": sorted({t.name for t in self._snap.tasks})} if self.status == "active" else {}
        if self.last_notified:
            expect["notifications"] = sorted(set(self.last_notified))
        if self.status != "active":
            expect["status"] = self.status
        if step is None:  # the start
            self.started["expect"] = expect
        else:
            self.steps.append({**step, **({"expect": expect} if expect else {})})

    def _restore(self, state: str | None) -> None:
        if state is not None:
            self.workflow, self.journal = runtime.load(self.process, state, limits=self.limits)

    def _stopped(self, error: runtime.EngineError) -> None:
        self.status = "error"
        self.error = f"{error.element}: {error.message}" if error.element else error.message
        with clock.clock_at(self.now):
            self._snap = runtime.snapshot(self.workflow)

    def _took(self, snap: runtime.Snapshot, answers: dict | None) -> None:
        """Take in a step's snapshot: path, status, urgent steps opened and closed, timers notified."""
        previous = {t.id: t for t in self._snap.tasks} if self._snap is not None else {}
        self.path.extend(snap.path)
        known = {**{t.id: t for t in snap.tasks}, **previous}  # a task opened in this step has its reminder too
        for entry in snap.journal:
            if entry.event == "timer_fired":
                self.last_fired.append(entry.element)
                self._notify_timer(entry, known)
        self._snap = snap
        open_ids = {t.id for t in snap.tasks}
        self.urgent = {k: v for k, v in self.urgent.items() if k in open_ids}  # a closed step needs no escalation
        for task in snap.tasks:
            if task.id not in previous and safeguarding.is_urgent(self.process, task.name):
                roles = list(task.roles)
                in_hours = calendar.get_calendar().is_office_hours(self.now)
                if not in_hours and safeguarding.EMERGENCY_DUTY_TEAM not in roles:
                    roles.append(safeguarding.EMERGENCY_DUTY_TEAM)
                self.urgent[task.id] = {"element": task.name, "title": task.title, "roles": roles, "escalated": False,
                                        "due_at": (self.now + safeguarding.URGENT_WITHIN).isoformat()}
        if snap.completed:
            self.status, self.outcome = "completed", snap.data.get("outcome")
            self.urgent = {}

    def _notify_timer(self, entry, tasks: dict[str, runtime.OpenTask]) -> None:
        properties = entry.detail.get("properties") or {}
        task = tasks.get(entry.detail.get("attached_to") or "")
        wording = notifications.timer_wording(
            properties, reference=REFERENCE, pathway=self.process.name, element=entry.element,
            task_title=task.title if task else None, task_due_at=self._due_at(task) if task else None)
        if wording is None:
            return
        kind, subject, body = wording
        target = str(properties.get("notify")).strip()
        roles = (self._roles(task) if task else []) if kind == "reminder" else [role_key(target)]
        self.notifications.append({"at": self.now.isoformat(), "element": entry.element,
                                   "title": task.title if task else entry.element, "roles": roles, "kind": kind,
                                   "subject": subject, "text": body})
        self.last_notified.append(entry.element)

    def _refer_significant_harm(self, answers: dict, where: str) -> None:
        """Significant harm answered yes reaches the front door at once (as ``cases._refer_significant_harm``):
        satisfied by an urgent step open; else immediate risk is raised on the case; else the answer is refused."""
        if not safeguarding.significant_harm_answered(answers) or self.status != "active":
            return
        if any(safeguarding.is_urgent(self.process, t.name) for t in self._snap.tasks):
            return
        if conventions.IMMEDIATE_RISK in self._snap.messages:
            payload = {"what_happened": f"Significant harm: answered yes at '{where}'"}
            with clock.clock_at(self.now):
                try:
                    snap = runtime.deliver_message(self.workflow, self.journal, conventions.IMMEDIATE_RISK, payload)
                except runtime.EngineError as error:
                    self._stopped(error)
                    return
                self.data = cases.known_data(self.data, snap.data, None)
                self._took(snap, None)
            return
        raise SandboxError(f"{where}: significant harm needs a referral to the front door, and this pathway does "
                           f"not make one from here: raise immediate risk on the case instead",
                           {key: "Raise immediate risk on the case: this answer needs the front door now"
                            for key in answers if conventions.is_significant_harm(key)})

    def _next_due(self) -> datetime | None:
        dues = [t.due_at for t in self._snap.timers] if self._snap is not None and self.status == "active" else []
        dues += [datetime.fromisoformat(u["due_at"]) for u in self.urgent.values() if not u["escalated"]]
        return min(dues) if dues else None

    def _fire_due(self) -> None:
        """Fire what is already due at the sandbox's instant (the timer service's next sweep would)."""
        self._fire_until(self.now)

    def _fire_until(self, target: datetime) -> None:
        firings = 0
        while self.status == "active":
            due = self._next_due()
            if due is None or due > target:
                return
            firings += 1
            if firings > MAX_FIRINGS:
                raise SandboxError(f"more than {MAX_FIRINGS} timers fell due on the way to {target.isoformat()}: "
                                   f"move the clock in shorter steps")
            self.now = max(self.now, due)
            self._fire_escalations()
            if self._snap.timers and self._snap.timers[0].due_at <= self.now:
                before = runtime.dump(self.workflow) if self.restorable else None
                with clock.clock_at(self.now):
                    try:
                        snap = runtime.fire_timers(self.workflow, self.journal)
                    except runtime.EngineError as error:
                        self._restore(before)
                        self._stopped(error)
                        return
                    self.data = cases.known_data(self.data, snap.data, None)
                    self._took(snap, None)

    def _fire_escalations(self) -> None:
        """The service's escalation of each urgent step nobody picked up in the hour (``safeguarding``)."""
        for task_id, urgent in list(self.urgent.items()):
            if urgent["escalated"] or datetime.fromisoformat(urgent["due_at"]) > self.now:
                continue
            urgent["escalated"] = True  # the step stays open, due within the hour it was given
            in_hours = calendar.get_calendar().is_office_hours(self.now)
            case = _Plain(reference=REFERENCE, process=_Plain(name=self.process.name))
            task = _Plain(title=urgent["title"], due_at=datetime.fromisoformat(urgent["due_at"]))
            subject, body = safeguarding.escalation_wording(case, task, in_hours)
            self.notifications.append({"at": self.now.isoformat(), "element": ESCALATION, "title": urgent["title"],
                                       "roles": safeguarding.manager_roles(urgent["roles"], in_hours),
                                       "kind": "escalation", "subject": subject, "text": body})
            self.last_fired.append(ESCALATION)
            self.last_notified.append(ESCALATION)


class _Plain:
    """The few attributes of a case or task the service's wording functions read."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)
