"""AfC's weekly Step up / Step down Transitions Meeting tracker, built live from the cases in transition.

AfC protocol, section 3: 'The list (or tracker) of children and families to be discussed at the meetings will
include relevant case information about the cases needing transition and will be circulated by an administrator in
advance of the meeting'; 'When completed remove case from Step up/Step down Transitions Meeting list (tracker)'.

A row per active case of ``afc_step_up`` / ``afc_step_down``. What it reads from the case data (the keys the AfC
forms set): ``child_name``, ``sending_manager``, ``receiving_manager``, ``allocated_worker``,
``transitions_meeting_date``, ``decision_date`` and ``documents_received`` (the checklist field of the task
``Task_SendDocumentChecklist``, whose options are the protocol's document check list). A completed case is not
active, so it leaves the list.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.cases import process_of
from service.engine import clock
from service.engine.bundle import ProcessDefinition
from service.engine.clock import LONDON
from service.models import Case, ProcessVersion

#: The pathways on the tracker and the direction each moves a case.
DIRECTIONS = {"afc_step_up": "step up", "afc_step_down": "step down"}
#: Who may read the tracker (besides admin): AfC's roles.
AFC_ROLES = ("peh_manager", "peh_practitioner", "csc_manager", "csc_social_worker", "spa", "spa_manager",
             "head_of_integrated_working")
CHECKLIST_TASK = "Task_SendDocumentChecklist"
CHECKLIST_FIELD = "documents_received"


@dataclass
class Document:
    value: str
    label: str
    received: bool


@dataclass
class TrackerRow:
    case_id: int
    reference: str
    child_name: str | None
    process: str
    direction: str
    sending_manager: str | None
    receiving_manager: str | None
    allocated: bool
    allocated_worker: str | None
    documents: list[Document] = field(default_factory=list)
    documents_received: list[str] = field(default_factory=list)
    documents_missing: list[str] = field(default_factory=list)
    days_in_transition: int = 0
    started_on: str = ""
    transitions_meeting_date: str | None = None
    decision_date: str | None = None
    stage: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def may_read(roles) -> bool:
    """Anyone with an AfC role, or admin."""
    return bool(set(roles) & (set(AFC_ROLES) | {"admin"}))


def checklist_options(process: ProcessDefinition) -> list[tuple[str, str]]:
    """The document check list of a pathway: the options of its checklist field, as (value, label)."""
    forms = [process.task_forms.get(CHECKLIST_TASK)] + [f for k, f in process.task_forms.items() if k != CHECKLIST_TASK]
    for form in forms:
        if form is None:
            continue
        checklist = form.field(CHECKLIST_FIELD)
        if checklist is not None and checklist.options:
            return [(str(o.value), o.label) for o in checklist.options]
    return []


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def row_for(session: Session, case: Case) -> TrackerRow:
    data = case.data or {}
    process = process_of(session, case)
    ticked = data.get(CHECKLIST_FIELD) or []
    ticked = {str(v) for v in ticked} if isinstance(ticked, list) else set()
    documents = [Document(value, label, value in ticked) for value, label in checklist_options(process)]
    today = clock.now().astimezone(LONDON).date()
    started = clock.as_utc(case.created_at).astimezone(LONDON).date()
    worker = _text(data.get("allocated_worker"))
    return TrackerRow(
        case_id=case.id, reference=case.reference, child_name=_text(data.get("child_name")),
        process=case.process.key, direction=DIRECTIONS.get(case.process.key, case.process.key),
        sending_manager=_text(data.get("sending_manager")), receiving_manager=_text(data.get("receiving_manager")),
        allocated=worker is not None, allocated_worker=worker,
        documents=documents,
        documents_received=[d.label for d in documents if d.received],
        documents_missing=[d.label for d in documents if not d.received],
        days_in_transition=max(0, (today - started).days), started_on=started.isoformat(),
        transitions_meeting_date=_text(data.get("transitions_meeting_date")),
        decision_date=_text(data.get("decision_date")),
        stage=[t.title for t in case.tasks],
    )


def rows(session: Session) -> list[TrackerRow]:
    """The tracker: every active step-up and step-down case, longest in transition first (each case's open steps
    read with the others', not once a case)."""
    query = (select(Case).join(ProcessVersion, Case.process_version_id == ProcessVersion.id)
             .where(ProcessVersion.key.in_(tuple(DIRECTIONS)), Case.status == "active")
             .options(selectinload(Case.tasks)).order_by(Case.created_at, Case.id))
    return [row_for(session, case) for case in session.scalars(query)]
