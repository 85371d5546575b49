"""The shapes of API requests and responses, and how a case or a task is shown."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from marshmallow import EXCLUDE, INCLUDE, Schema, fields, validate
from sqlalchemy.orm import Session

from service import cases as case_service
from service import listed_tasks
from service.forms import form_to_api
from service.listed_tasks import ListedTask
from service.models import AuditEvent, Case, OpenTask


#: The longest value of each kind the database keeps (the columns of service.models).
KEY_LENGTH, REFERENCE_LENGTH, USER_NAME_LENGTH, NAME_LENGTH = 120, 120, 80, 255
#: An id the database can hold (PostgreSQL ``integer``); a larger one names nothing.
Id = validate.Range(min=1, max=2**31 - 1)


class ErrorSchema(Schema):
    """Every error answer: ``message`` always; ``errors`` what is wrong, by field (422) or by file (deploy 400)."""

    class Meta:
        unknown = INCLUDE  # an error may say more (e.g. the messages a case waits for)

    message = fields.String(required=True)
    errors = fields.Raw(metadata={"description": "422: each wrong field and what is wrong with it (an object); "
                                                 "a refused deployment (400): a list of {file, element, message}"})
    waiting = fields.List(fields.String(), metadata={"description": "409 on a message: the messages the case "
                                                                    "waits for"})
    councils = fields.List(fields.String(), metadata={"description": "400/403 on X-Council: your councils"})
    matched = fields.List(fields.Integer(), metadata={"description": "409 on a message with a correlation key "
                                                                     "that matches several cases: their ids"})
    limit = fields.Integer(metadata={"description": "the limit that was exceeded"})


class DeploymentProblemSchema(Schema):
    file = fields.String()
    element = fields.String(allow_none=True)
    message = fields.String()


class DeploymentRefusedSchema(Schema):
    message = fields.String(required=True)
    errors = fields.List(fields.Nested(DeploymentProblemSchema), required=True)


class WaitingSchema(Schema):
    message = fields.String(required=True)
    waiting = fields.List(fields.String(), metadata={"description": "the messages the case waits for now"})


class StrictSchema(Schema):
    class Meta:
        unknown = EXCLUDE


class ChildSchema(StrictSchema):
    """A child's details (checked by the service: names required, a real date, the NHS number's check digit)."""

    given_name = fields.String(validate=validate.Length(max=200))
    family_name = fields.String(validate=validate.Length(max=200))
    date_of_birth = fields.String(allow_none=True, validate=validate.Length(max=40),
                                  metadata={"description": "YYYY-MM-DD (an unborn child: the expected date)"})
    council_number = fields.String(allow_none=True, validate=validate.Length(max=200))
    nhs_number = fields.String(allow_none=True, validate=validate.Length(max=40))


class StartCaseSchema(StrictSchema):
    process = fields.String(required=True, validate=validate.Length(max=KEY_LENGTH),
                            metadata={"description": "pathway key"})
    reference = fields.String(required=True, validate=validate.Length(max=REFERENCE_LENGTH),
                              metadata={"description": "the council's own case number"})
    data = fields.Dict(load_default=dict)
    child = fields.Nested(ChildSchema, load_default=None, allow_none=True,
                          metadata={"description": "a new child the case is about (or child_id)"})
    child_id = fields.Integer(load_default=None, allow_none=True, validate=Id,
                              metadata={"description": "an existing child the case is about"})
    family_id = fields.Integer(load_default=None, allow_none=True, validate=Id,
                               metadata={"description": "the child's family; with a new child and no "
                                                        "family_id, a new family"})


class CaseQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(["active", "completed", "cancelled", "error"]))
    process = fields.String(validate=validate.Length(max=120))
    q = fields.String(validate=validate.Length(max=200), metadata={
        "description": "a child's name (parts of, any case), date of birth, NHS or council number, or a reference; "
                       "422 when more than 2,000 children match it"})
    reference = fields.String(validate=validate.Length(max=REFERENCE_LENGTH), metadata={"description": "part of"})
    mine = fields.Boolean(load_default=False, metadata={
        "description": "only cases where you hold or held a task, or which you started"})
    overdue = fields.Boolean(load_default=False, metadata={"description": "only cases with an overdue open task"})
    family = fields.Integer(validate=Id)
    child = fields.Integer(validate=Id)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after = fields.String(validate=validate.Length(max=400), metadata={
        "description": "the page after this cursor (the list's `next`): cheaper than page= deep in a long list"})


class CancelSchema(StrictSchema):
    reason = fields.String(required=True, metadata={"description": "why the case is cancelled (audited)"})


class DataSchema(StrictSchema):
    data = fields.Raw(load_default=dict)


class MessageSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(max=NAME_LENGTH))
    data = fields.Raw(load_default=dict)


def after_field() -> fields.String:
    """A list's ``after`` query parameter: the cursor of the page before (keyset paging, ``service.paging``)."""
    return fields.String(validate=validate.Length(max=400), metadata={
        "description": "the page after this cursor (the X-Next-Cursor header of the page before)"})


class TaskQuerySchema(StrictSchema):
    case = fields.Integer(validate=Id)
    role = fields.String(validate=validate.Length(max=USER_NAME_LENGTH))
    overdue = fields.Boolean(load_default=False)
    after = after_field()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class ClaimSchema(StrictSchema):
    assignee = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=USER_NAME_LENGTH))


class FieldSchema(Schema):
    key = fields.String()
    label = fields.String()
    type = fields.String()
    required = fields.Boolean()
    options = fields.List(fields.Dict())


class FormSchema(Schema):
    fields = fields.List(fields.Nested(FieldSchema))


class TaskSchema(Schema):
    id = fields.String()
    case_id = fields.Integer()
    name = fields.String()
    title = fields.String()
    roles = fields.List(fields.String())
    assignee = fields.String(allow_none=True, metadata={"description": "the assignee's user name, for people"})
    assignee_id = fields.Integer(allow_none=True, metadata={"description": "the assignee's user id"})
    due_at = fields.DateTime(allow_none=True)
    form = fields.Nested(FormSchema)
    ad_hoc = fields.Dict(metadata={"description": "an activity of an ad-hoc sub-process: the sub-process (element, "
                                                  "name) and where to finish it once the chosen activities are done"})


class TimerSchema(Schema):
    id = fields.String()
    name = fields.String()
    due_at = fields.DateTime()


class CaseSchema(Schema):
    id = fields.Integer()
    process = fields.String()
    version = fields.Integer()
    reference = fields.String()
    status = fields.String()
    outcome = fields.String(allow_none=True)
    data = fields.Dict()
    error = fields.Dict(allow_none=True)
    tasks = fields.List(fields.Nested(TaskSchema))
    timers = fields.List(fields.Nested(TimerSchema))
    started_from_case_id = fields.Integer(allow_none=True)
    family_id = fields.Integer(allow_none=True)
    child = fields.Dict(allow_none=True)


class CaseSummarySchema(Schema):
    id = fields.Integer()
    process = fields.String()
    version = fields.Integer()
    reference = fields.String()
    status = fields.String()
    outcome = fields.String(allow_none=True)
    error = fields.Dict(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    family_id = fields.Integer(allow_none=True)
    child = fields.Dict(allow_none=True, metadata={"description": "id, given_name, family_name, date_of_birth"})
    started_from_case_id = fields.Integer(allow_none=True)


class CaseListSchema(Schema):
    cases = fields.List(fields.Nested(CaseSummarySchema))
    total = fields.Integer(metadata={"description": "how many match, counted up to 10,000 and one: 10,001 means more"})
    page = fields.Integer()
    per_page = fields.Integer()
    next = fields.String(allow_none=True, metadata={"description": "the cursor of the next page (after=), if any"})


class HistorySchema(Schema):
    at = fields.DateTime()
    actor = fields.String()
    event = fields.String()
    task = fields.String(allow_none=True)
    detail = fields.Dict()


class ProcessSummarySchema(Schema):
    key = fields.String()
    name = fields.String()
    version = fields.Integer()
    status = fields.String(metadata={"description": "draft, submitted, published, suspended, retired or rejected"})


class ProcessSchema(ProcessSummarySchema):
    roles = fields.List(fields.String())
    start_form = fields.Nested(FormSchema, allow_none=True)
    documentation = fields.String(allow_none=True)


class DeploymentSchema(Schema):
    id = fields.Integer()
    created = fields.Boolean()
    status = fields.String(metadata={"description": "draft (a second person publishes it) or published"})
    processes = fields.List(fields.Nested(ProcessSummarySchema))
    warnings = fields.List(fields.Nested(DeploymentProblemSchema),
                           metadata={"description": "what may not be meant: deployed all the same"})
    removed = fields.List(fields.String(), metadata={"description": "files taken away from the council's set"})
    replaced = fields.Dict(metadata={"description": "old file -> the uploaded file that now defines its ids"})


class NotificationSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    task = fields.String(allow_none=True)
    kind = fields.String()
    subject = fields.String()
    body = fields.String()
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


def task_json(session: Session, task: OpenTask) -> dict[str, Any]:
    form = case_service.task_form(session, task)
    found = {"id": task.id, "case_id": task.case_id, "name": task.name, "title": task.title, "roles": task.roles,
             "assignee": task.assignee, "assignee_id": task.assignee_id, "due_at": task.due_at, "form": form_to_api(form) if form else {"fields": []}}
    ad_hoc = case_service.ad_hoc_of(session, task)
    if ad_hoc is not None:  # one of the activities of an ad-hoc sub-process: the worker chooses, then finishes
        found["ad_hoc"] = {"element": ad_hoc[0], "name": ad_hoc[1],
                           "finish": f"/api/v1/cases/{task.case_id}/ad-hoc/{ad_hoc[0]}/finish"}
    return found


def child_json(case: Case) -> dict[str, Any] | None:
    child = case.child if case.child_id else None
    return {"id": child.id, "given_name": child.given_name, "family_name": child.family_name,
            "date_of_birth": child.date_of_birth} if child is not None else None


def case_summary_json(case: Case) -> dict[str, Any]:
    return {"id": case.id, "process": case.process.key, "version": case.process.version, "reference": case.reference,
            "status": case.status, "outcome": case.outcome, "error": case.error, "created_at": case.created_at,
            "updated_at": case.updated_at, "family_id": case.family_id, "child": child_json(case),
            "started_from_case_id": case.started_from_case_id}


def case_list_answer(cases: list[Case], **page: Any):
    """A page of cases as :class:`CaseListSchema` dumps it (each as :func:`case_summary_json`), without dumping it
    again (as :func:`tasks_answer`): its datetimes written as the schema writes them (ISO 8601)."""
    summaries = [case_summary_json(c) for c in cases]
    for summary in summaries:
        summary["created_at"], summary["updated_at"] = summary["created_at"].isoformat(), summary["updated_at"].isoformat()
    return jsonify({"cases": summaries, **page})


def case_json(session: Session, case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "process": case.process.key, "version": case.process.version, "reference": case.reference,
        "status": case.status, "outcome": case.outcome, "data": case.data, "error": case.error,
        "tasks": [task_json(session, t) for t in case.tasks],
        "timers": [{"id": t.id, "name": t.name, "due_at": t.due_at} for t in case.timers],
        "started_from_case_id": case.started_from_case_id,
        "family_id": case.family_id, "child": child_json(case),
    }


def case_answer(session: Session, case: Case, status: int = 200):
    """The case as :class:`CaseSchema` dumps it, answered without dumping it again: :func:`case_json` is plain
    JSON already except its datetimes, written here as the schema writes them (ISO 8601)."""
    body = case_json(session, case)
    response = jsonify(body | {"tasks": due_in_iso(body["tasks"]), "timers": due_in_iso(body["timers"])})
    response.status_code = status
    return response


def tasks_answer(session: Session, tasks: list[ListedTask], headers: dict[str, str]):
    """A list of tasks as :class:`TaskSchema` dumps it (as :func:`task_json` shows one task), without dumping
    it again (as :func:`case_answer`): an inbox page is read far more often than anything else. Built from the
    list's plain rows, each form as the list's pathway facts hold it (service.listed_tasks)."""
    with_people: dict = {}
    response = jsonify([listed_task_json(session, t, with_people) for t in tasks])
    response.headers.update(headers)
    return response


def listed_task_json(session: Session, task: ListedTask, with_people: dict) -> dict[str, Any]:
    found = {"id": task.id, "case_id": task.case_id, "name": task.name, "title": task.title, "roles": task.roles,
             "assignee": task.assignee, "assignee_id": task.assignee_id,
             "due_at": task.due_at.isoformat() if task.due_at is not None else None,
             "form": listed_tasks.form_json(session, task, with_people)}
    ad_hoc = task.facts.ad_hoc.get(task.name)
    if ad_hoc is not None:  # as task_json
        found["ad_hoc"] = {"element": ad_hoc[0], "name": ad_hoc[1],
                           "finish": f"/api/v1/cases/{task.case_id}/ad-hoc/{ad_hoc[0]}/finish"}
    return found


def due_in_iso(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` (tasks or timers as plain dicts) with each due date written as the schemas write it (ISO 8601)."""
    for item in items:
        if item["due_at"] is not None:
            item["due_at"] = item["due_at"].isoformat()
    return items


def history_json(event: AuditEvent) -> dict[str, Any]:
    return {"at": event.at, "actor": event.actor, "event": event.event, "task": event.task, "detail": event.detail}


def deployment_json(result) -> dict[str, Any]:
    return {"id": result.deployment.id, "created": result.created, "status": result.deployment.status,
            "processes": [{"key": v.key, "name": v.name, "version": v.version, "status": v.status}
                          for v in result.processes],
            "warnings": [p.to_json() for p in result.warnings], "removed": result.removed,
            "replaced": result.replaced}
