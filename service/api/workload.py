"""Managers: the team's workload, giving a task (or many) to someone with its role."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from service import workload as workload_service
from service.engine import clock
from service.listed_tasks import ListedTask
from service.models import Case, db

from .access import authenticate
from .schemas import StrictSchema, TaskSchema, USER_NAME_LENGTH, after_field, due_in_iso, task_json

blp = Blueprint("workload", __name__, description="Managers: workload and reassigning")
blp.before_request(authenticate)


class WorkloadQuerySchema(StrictSchema):
    after = after_field()


class WaitingQuerySchema(WorkloadQuerySchema):
    role = fields.String(required=True, validate=validate.Length(min=1, max=USER_NAME_LENGTH))


class ReassignSchema(StrictSchema):
    assignee = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=USER_NAME_LENGTH))


class BulkReassignSchema(ReassignSchema):
    tasks = fields.List(fields.String(validate=validate.Length(max=36)), load_default=None)


class WorkloadTaskSchema(Schema):
    id = fields.String()
    case_id = fields.Integer()
    reference = fields.String()
    process = fields.String()
    title = fields.String()
    roles = fields.List(fields.String())
    assignee = fields.String(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean()


class PileSchema(Schema):
    key = fields.String(metadata={"description": "the worker's user name, or the role(s) of unassigned tasks"})
    label = fields.String()
    count = fields.Integer()
    overdue = fields.Integer()
    tasks = fields.List(fields.Nested(WorkloadTaskSchema))


class ErroredCaseSchema(Schema):
    id = fields.Integer()
    reference = fields.String()
    process = fields.String()
    error = fields.Dict(allow_none=True)
    updated_at = fields.DateTime()


class WorkloadSchema(Schema):
    total = fields.Integer(metadata={"description": "the team's open tasks, counted up to 10,000 and one: 10,001 "
                                                    "means more"})
    overdue = fields.Integer(metadata={"description": "how many of them are overdue, counted likewise"})
    by_worker = fields.List(fields.Nested(PileSchema), metadata={
        "description": "a page of the workers holding open tasks, by user name (X-Next-Cursor: the next page's "
                       "``after``); each pile lists its 10 most urgent tasks"})
    by_role = fields.List(fields.Nested(PileSchema), metadata={
        "description": "the tasks nobody has taken, under the first role that may take them, most overdue first"})
    by_role_capped = fields.Boolean(metadata={
        "description": "the roles' piles counted 1,000 tasks, the most urgent: as many or more are waiting"})
    errors = fields.List(fields.Nested(ErroredCaseSchema), metadata={"description": "cases stopped on an error "
                                                                                   "(retry: POST /cases/<id>/retry)"})


class BulkResultSchema(Schema):
    tasks = fields.List(fields.Nested(TaskSchema))


def _task(task: ListedTask, now: datetime) -> dict[str, Any]:
    return {"id": task.id, "case_id": task.case_id, "reference": task.reference, "process": task.process_key,
            "title": task.title, "roles": task.roles, "assignee": task.assignee, "due_at": task.due_at,
            "overdue": task.due_at is not None and task.due_at < now}


def _pile(pile: workload_service.Pile, now: datetime) -> dict[str, Any]:
    return {"key": pile.key, "label": pile.label, "count": pile.count, "overdue": pile.overdue,
            "tasks": [_task(t, now) for t in pile.tasks]}


def workload_json(load: workload_service.Workload, errored: list[Case]) -> dict[str, Any]:
    """The workload and the errored cases as :class:`WorkloadSchema` would have them dumped, its datetimes as
    they are."""
    now = clock.now()
    return {"total": load.total, "overdue": load.overdue, "by_worker": [_pile(p, now) for p in load.by_worker],
            "by_role": [_pile(p, now) for p in load.by_role], "by_role_capped": load.by_role_capped,
            "errors": [{"id": c.id, "reference": c.reference, "process": c.process.key, "error": c.error,
                        "updated_at": c.updated_at} for c in errored]}


def _in_iso(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (:func:`workload_json`) with its datetimes written as the schema writes them (ISO 8601)."""
    for pile in body["by_worker"] + body["by_role"]:
        due_in_iso(pile["tasks"])
    for case in body["errors"]:
        case["updated_at"] = case["updated_at"].isoformat()
    return body


@blp.route("/workload")
@blp.arguments(WorkloadQuerySchema(), location="query")
@blp.response(200, WorkloadSchema)
def get_workload(query):
    """The open tasks of the manager's pathways: a page of workers by user name, the tasks nobody has taken by
    role, each pile's most urgent first; and the cases stopped on an error (a manager's: 403 otherwise).
    Answered without dumping it again through the schema (a page of 210 tasks: a tenth to a fifth of its CPU)."""
    load = workload_service.workload(db.session, g.actor, after=query.get("after"))
    errored = workload_service.errored_cases(db.session, g.actor)
    response = jsonify(_in_iso(workload_json(load, errored)))
    if load.next_workers:
        response.headers["X-Next-Cursor"] = load.next_workers
    return response


@blp.route("/workload/waiting")
@blp.arguments(WaitingQuerySchema(), location="query")
@blp.response(200, PileSchema)
def get_waiting_tasks(query):
    """The tasks of the manager's pathways that nobody has taken and ``role`` may take, counted up to 1,000
    (1,000: as many or more), most urgent first, 100 at a time (X-Next-Cursor: the next page's ``after``)."""
    pile, more = workload_service.waiting_tasks(db.session, g.actor, query["role"], after=query.get("after"))
    return _pile_answer(pile, more)


@blp.route("/workload/workers/<string:name>")
@blp.arguments(WorkloadQuerySchema(), location="query")
@blp.response(200, PileSchema)
def get_worker_tasks(query, name: str):
    """A worker's whole pile: their open tasks of the manager's pathways, counted, most urgent first, 100 at a
    time (X-Next-Cursor: the next page's ``after``); 404 when none is theirs, 403 for anyone but a manager."""
    pile, more = workload_service.worker_tasks(db.session, g.actor, name, after=query.get("after"))
    return _pile_answer(pile, more)


def _pile_answer(pile: workload_service.Pile, more: str | None):
    """A whole pile's page as :class:`PileSchema` dumps it, without dumping it again; X-Next-Cursor if more."""
    body = _pile(pile, clock.now())
    due_in_iso(body["tasks"])
    response = jsonify(body)
    if more:
        response.headers["X-Next-Cursor"] = more
    return response


@blp.route("/tasks/<string:task_id>/reassign", methods=["POST"])
@blp.arguments(ReassignSchema())
@blp.response(200, TaskSchema)
def reassign(body, task_id: str):
    """A manager gives the task to someone holding its role; 422 if nobody is named or they lack the role."""
    task = workload_service.reassign(db.session, task_id, body.get("assignee"), g.actor)
    db.session.commit()
    return task_json(db.session, task)


@blp.route("/workload/reassign", methods=["POST"])
@blp.arguments(BulkReassignSchema())
@blp.response(200, BulkResultSchema)
def reassign_many(body):
    """A manager gives several tasks to one person: all, or none (422 naming the task that cannot go)."""
    tasks = workload_service.reassign_many(db.session, body.get("tasks"), body.get("assignee"), g.actor)
    db.session.commit()
    return {"tasks": [task_json(db.session, t) for t in tasks]}
