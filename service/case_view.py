"""What a case is about, in plain words: the child, why the case is here, the answers it rests on, the cases
it is linked to, and its history as sentences.

The task page, the case page and the API (``GET /api/v1/cases/<id>/answers``) read a case through this
module, so that a worker sees the same thing everywhere: option labels, never codes; field labels from the
form, never keys; dates as "9 December 2026"; people by their display names.

Who may see a case is settled before any of this runs (``service.cases.get_case``); linked cases are shown
as links only when the reader may see them too (``service.policy`` through ``service.cases.may_see_case``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import cases as case_service
from service.engine import clock
from service.engine.clock import LONDON
from service.engine.bundle import ProcessDefinition
from service.forms.model import Field, FormDefinition
from service.models import AuditEvent, Case, User
from service.auth import display_names
from service.policy import Actor
from service.wording import label_from_key, words

#: Case data keys that name the child, or the family when the child is not named (first found wins).
CHILD_NAME_KEYS = ("child_name", "child_full_name", "name_of_child", "young_person_name")
FAMILY_NAME_KEYS = ("family_name",)
BIRTH_DATE_KEYS = ("date_of_birth", "child_date_of_birth", "child_dob", "dob")

#: Answers that belong to the case's bookkeeping, not to a decision.
_NOT_ANSWERS = {"outcome"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


# -- plain words -----------------------------------------------------------------------------------

def plain_time(value: datetime) -> str:
    """'2:30pm', '10am', 'midday', 'midnight' (GOV.UK style)."""
    if value.hour == 0 and value.minute == 0:
        return "midnight"
    if value.hour == 12 and value.minute == 0:
        return "midday"
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    return f"{hour}{suffix}" if value.minute == 0 else f"{hour}:{value.minute:02d}{suffix}"


def plain_date(value: datetime | date | None) -> str:
    """'9 December 2026' (a datetime in London time)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = clock.as_utc(value).astimezone(LONDON) if value.tzinfo else value
    return f"{value.day} {value:%B %Y}"


def plain_datetime(value: datetime | None) -> str:
    """'9 December 2026 at 2:30pm' (London time)."""
    if value is None:
        return ""
    local = clock.as_utc(value).astimezone(LONDON) if value.tzinfo else value
    return f"{plain_date(local)} at {plain_time(local)}"


def plain_value(value: Any, form_field: Field | None = None) -> str:
    """An answer as a person reads it: the option's label, Yes/No, a date in words, lists joined."""
    if value is None or value == "":
        return "Not given"
    if form_field is not None and form_field.options:
        labels = {str(o.value): o.label for o in form_field.options}
        if isinstance(value, list):
            return ", ".join(labels.get(str(v), words(v)) for v in value) or "None"
        if str(value) in labels:
            return labels[str(value)]
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    if isinstance(value, list):
        return ", ".join(plain_value(v, form_field) for v in value) or "None"
    if isinstance(value, dict):
        return "; ".join(f"{label_from_key(str(k))}: {plain_value(v)}" for k, v in value.items()) or "None"
    if isinstance(value, str):
        if _ISO_DATE.match(value):
            try:
                return plain_date(date.fromisoformat(value))
            except ValueError:
                return value
        if _ISO_DATETIME.match(value):
            try:
                return plain_datetime(datetime.fromisoformat(value))
            except ValueError:
                return value
        if form_field is None and re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", value):
            text = words(value)  # a code no form explains: at least not in snake case
            return text[:1].upper() + text[1:]
    return str(value)


# -- the child -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Child:
    name: str | None
    date_of_birth: date | None
    family_name: str | None = None

    @property
    def age(self) -> int | None:
        if self.date_of_birth is None:
            return None
        today = clock.now().astimezone(LONDON).date()
        born = self.date_of_birth
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    @property
    def age_text(self) -> str | None:
        age = self.age
        if age is None:
            return None
        return f"{age} year{'s' if age != 1 else ''} old"

    @property
    def shown_name(self) -> str:
        if self.name:
            return self.name
        if self.family_name:
            return f"A child of the {self.family_name} family"
        return "Not recorded"


def child_of(case: Case) -> Child | None:
    """The child the case is about: the person the referral named (``case.child``), else from the case's answers."""
    person = getattr(case, "child", None)
    if person is not None:
        born = None
        if person.date_of_birth and _ISO_DATE.match(person.date_of_birth[:10]):
            try:
                born = date.fromisoformat(person.date_of_birth[:10])
            except ValueError:
                born = None
        return Child(f"{person.given_name} {person.family_name}".strip() or None, born, person.family_name or None)
    data = case.data or {}
    name = next((str(data[k]).strip() for k in CHILD_NAME_KEYS if data.get(k)), None)
    family = next((str(data[k]).strip() for k in FAMILY_NAME_KEYS if data.get(k)), None)
    born = None
    for key in BIRTH_DATE_KEYS:
        raw = data.get(key)
        if isinstance(raw, str) and _ISO_DATE.match(raw[:10]):
            try:
                born = date.fromisoformat(raw[:10])
            except ValueError:
                continue
            break
    if name is None and family is None and born is None:
        return None
    return Child(name, born, family)


# -- the answers -----------------------------------------------------------------------------------

@dataclass
class Answer:
    key: str
    label: str
    value: Any
    text: str


@dataclass
class AnswerGroup:
    """The answers one step gave: the start of the case, a task, or a message (immediate risk)."""
    title: str
    task: str | None
    at: datetime
    by: str
    answers: list[Answer] = field(default_factory=list)


def field_index(process) -> dict[str, Field]:
    """Every field of the pathway's forms by key (the first form that asks it), for answers no task form names."""
    index: dict[str, Field] = {}
    for form in (process.start_form, *process.task_forms.values()):
        if form is None:
            continue
        for f in form.fields:
            index.setdefault(f.key, f)
    return index


def answers_from(data: dict[str, Any], form: FormDefinition | None, index: dict[str, Field],
             skip_empty: bool = False) -> list[Answer]:
    out = []
    order = [f.key for f in form.fields] if form is not None else []
    keys = [k for k in order if k in data] + [k for k in data if k not in order]
    for key in keys:
        if key in _NOT_ANSWERS or (skip_empty and data[key] in (None, "", [])):
            continue
        f = (form.field(key) if form is not None else None) or index.get(key)
        value = data[key]
        out.append(Answer(key, f.label if f is not None and f.label else label_from_key(key), value,
                          plain_value(value, f)))
    return out


def answer_groups(session: Session, case: Case, events: list[AuditEvent] | None = None) -> list[AnswerGroup]:
    """Every answer the case was given, grouped by the step that gave it, oldest first."""
    process = case_service.process_of(session, case)
    index = field_index(process)
    events = events if events is not None else case_service.history(session, case)
    names = display_names(session, {e.actor for e in events})
    groups = []
    for e in events:
        detail = e.detail or {}
        data = detail.get("data")
        if not isinstance(data, dict) or not data:
            continue
        if e.event == "case_started":
            title = ("Handed over from another case" if detail.get("from_case") else
                     f"Start of the case: {process.start_form.title}" if process.start_form and process.start_form.title
                     else "Start of the case")
            form = None if detail.get("from_case") else process.start_form
        elif e.event == "task_completed":
            title, form = detail.get("title") or _element_name(process, e.task), process.form_of(e.task or "")
        elif e.event == "message_received":
            title = "Immediate risk reported" if detail.get("name") == "immediate_risk" else \
                f"Message received: {words(detail.get('name') or '')}"
            form = None
        elif e.event == "case_retried":
            title, form = "Corrected after an error", None
        else:
            continue
        answers = answers_from(data, form, index, skip_empty=True)
        if answers:
            groups.append(AnswerGroup(title, e.task, e.at, names.get(e.actor, e.actor), answers))
    return groups


def _element_name(process, element: str | None) -> str:
    return element_names(process).get(element or "", label_from_key(element or "a step"))


def element_names(process) -> dict[str, str]:
    names: dict[str, str] = {}
    for spec in (process.spec, *process.subprocess_specs.values()):
        for task_spec in spec.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if bpmn_id:
                names[bpmn_id] = getattr(task_spec, "bpmn_name", None) or label_from_key(bpmn_id)
    return names


def answers_json(groups: list[AnswerGroup]) -> list[dict[str, Any]]:
    return [{"title": g.title, "task": g.task, "at": clock.as_utc(g.at).isoformat(), "by": g.by,
             "answers": [{"key": a.key, "label": a.label, "value": a.value, "text": a.text} for a in g.answers]}
            for g in groups]


# -- why the case is here, and its links -------------------------------------------------------------

@dataclass
class LinkedCase:
    direction: str  # from | to
    case_id: int
    reference: str
    pathway: str
    status: str
    outcome: str | None
    visible: bool  # the reader may open it


@dataclass
class Origin:
    pathway: str
    started_by: str | None
    started_at: datetime
    handed_over_from: LinkedCase | None


def outcome_text(process: ProcessDefinition, outcome: str | None) -> str | None:
    """An outcome as the pathway names it: the name of the end event that records it, else the code as words."""
    if not outcome:
        return None
    return process.safeguarding.outcomes.get(outcome) or label_from_key(outcome)


def linked_cases(session: Session, case: Case, actor: Actor) -> list[LinkedCase]:
    """The case it was handed over from and the cases it was handed over to, each with its outcome."""
    linked = []
    if case.started_from_case_id:
        source = session.get(Case, case.started_from_case_id)
        if source is not None:
            linked.append(_linked("from", source, session, actor))
    for target in session.scalars(select(Case).where(Case.started_from_case_id == case.id).order_by(Case.id)):
        linked.append(_linked("to", target, session, actor))
    return linked


def _linked(direction: str, other: Case, session: Session, actor: Actor) -> LinkedCase:
    visible = other.status != case_service.ERASED and case_service.may_see_case(session, other, actor)
    return LinkedCase(direction, other.id, other.reference, other.process.name, other.status,
                      outcome_text(case_service.process_of(session, other), other.outcome), visible)


def origin(session: Session, case: Case, links: list[LinkedCase]) -> Origin:
    starter = display_names(session, {case.started_by}).get(case.started_by or "") if case.started_by else None
    source = next((link for link in links if link.direction == "from"), None)
    return Origin(case.process.name, starter, case.created_at, source)


def linked_json(links: list[LinkedCase]) -> list[dict[str, Any]]:
    return [{"direction": link.direction, "case_id": link.case_id if link.visible else None,
             "reference": link.reference if link.visible else None, "pathway": link.pathway,
             "status": link.status, "outcome": link.outcome} for link in links]


# -- the history in sentences --------------------------------------------------------------------------

@dataclass
class HistoryLine:
    at: datetime
    by: str
    title: str
    lines: list[str]
    answers: list[Answer]
    event: str


def _decision_line(detail: dict[str, Any]) -> tuple[str, list[str]]:
    name = detail.get("decision_name") or label_from_key(detail.get("decision") or "decision")
    outputs = detail.get("outputs")
    rows = outputs if isinstance(outputs, list) else [outputs]
    said = []
    for row in rows:
        if isinstance(row, dict):
            said.extend(plain_value(v) if len(row) == 1 else f"{words(k)} {plain_value(v)}" for k, v in row.items())
        elif row is not None:
            said.append(plain_value(row))
    inputs = detail.get("inputs") or {}
    because = " and ".join(f"{words(k)} is {plain_value(v)}" for k, v in inputs.items()) if isinstance(inputs, dict) else ""
    rules = [r for r in detail.get("matched_rules") or [] if isinstance(r, dict)]
    numbers = ", ".join(str(r.get("index")) for r in rules if r.get("index") is not None)
    result = ", ".join(said) or "no result"
    line = f"Decision: {result[:1].upper() + result[1:]}"
    if because:
        line += f", because {because}"
    if numbers:
        line += f" (rule {numbers})"
    notes = [str(r["annotation"]) for r in rules if r.get("annotation")]
    return name, [line, *notes]


def history_lines(session: Session, case: Case, events: list[AuditEvent] | None = None) -> list[HistoryLine]:
    """The case's audit events as sentences, oldest first."""
    process = case_service.process_of(session, case)
    names = element_names(process)
    index = field_index(process)
    events = events if events is not None else case_service.history(session, case)
    people = display_names(session, {e.actor for e in events} | {
        (e.detail or {}).get("assignee") for e in events if e.event == "task_assigned"})
    out = []
    for e in events:
        detail = e.detail or {}
        element = names.get(e.task or "", label_from_key(e.task) if e.task else None)
        lines: list[str] = []
        answers: list[Answer] = []
        data = detail.get("data") if isinstance(detail.get("data"), dict) else None
        if e.event == "case_started":
            title = "Case started"
            if detail.get("from_case"):
                lines.append("Handed over from another case, with its answers.")
            if detail.get("signal"):
                lines.append(f"Started by the signal {words(detail['signal'])}.")
            form = None if detail.get("from_case") else process.start_form
            answers = answers_from(data or {}, form, index)
        elif e.event == "task_completed":
            title = f"Completed: {detail.get('title') or element}"
            answers = answers_from(data or {}, process.form_of(e.task or ""), index)
            if detail.get("as_admin"):
                lines.append("Completed by the council's administrator.")
        elif e.event == "task_assigned":
            title = f"Task given to {people.get(detail.get('assignee'), detail.get('assignee'))}: {element}"
        elif e.event == "decision_taken":
            name, lines = _decision_line(detail)
            title = f"Decision taken: {name}"
        elif e.event == "timer_fired":
            title = f"Time reached: {element}" if element else "Time reached"
        elif e.event == "message_received":
            if detail.get("name") == "immediate_risk":
                title = "Immediate risk reported"
                if data and data.get("what_happened"):
                    lines.append(f"What happened: {data['what_happened']}")
            else:
                title = f"Message received: {words(detail.get('name') or '')}"
                answers = answers_from(data or {}, None, index)
        elif e.event in ("message_sent", "message_thrown"):
            title = f"Message sent: {words(detail.get('name') or '')}"
        elif e.event == "case_handed_on":
            title = "Handed on to another pathway"
            lines.append(f"A new case of {label_from_key(detail.get('process') or '')} carries on the work.")
        elif e.event == "message_undelivered":
            title = "Message not delivered"
            lines.append(str(detail.get("reason") or detail.get("message") or ""))
        elif e.event == "signal_undelivered":
            title = f"Signal not delivered: {words(detail.get('name') or '')}"
            lines.append(str(detail.get("reason") or ""))
        elif e.event == "case_retried":
            title = "Case run again after an error"
            answers = answers_from(data or {}, None, index)
        elif e.event == "error":
            title = f"Stopped on an error{': ' + element if element else ''}"
            lines.append(str(detail.get("message") or ""))
        elif e.event == "case_completed":
            title = "Case closed"
            if detail.get("outcome"):
                lines.append(f"Outcome: {outcome_text(process, detail['outcome'])}")
        elif e.event == "case_cancelled":
            title = "Case cancelled"
            lines.append(f"Reason: {detail.get('reason')}")
        elif e.event == "message_answers_kept":
            title = "Answers already given were kept"
            lines.append("A message tried to change answers the case already had; they were not changed.")
        else:
            title = label_from_key(e.event) + (f": {element}" if element else "")
        out.append(HistoryLine(e.at, people.get(e.actor, e.actor), title, [line for line in lines if line],
                               answers, e.event))
    return out
