"""Tasks: the caller's inbox, completing a task, claiming or reassigning one."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from service import cases as case_service
from service import paging
from service.models import db

from .access import authenticate
from .schemas import CaseSchema, ClaimSchema, DataSchema, TaskQuerySchema, TaskSchema, case_answer, task_json, tasks_answer

blp = Blueprint("tasks", __name__, description="User tasks")
blp.before_request(authenticate)


@blp.route("/tasks")
@blp.arguments(TaskQuerySchema(), location="query")
@blp.response(200, TaskSchema(many=True))
def list_tasks(query):
    """The open tasks the caller may work on (overdue=true: those past their due date), most urgent first, a
    page at a time: when there may be more, the X-Next-Cursor header is the ``after`` of the next page."""
    tasks = case_service.open_tasks(db.session, g.actor, case_id=query.get("case"), role=query.get("role"),
                                    overdue=query["overdue"], after=query.get("after"), limit=query["limit"])
    headers = {"X-Next-Cursor": paging.task_cursor(tasks[-1])} if len(tasks) == query["limit"] else {}
    return tasks_answer(db.session, tasks, headers)


@blp.route("/tasks/<string:task_id>")
@blp.response(200, TaskSchema)
def get_task(task_id: str):
    task = case_service.get_task(db.session, task_id, g.actor, purpose="task", to_work=False)  # a manager reads too
    case_service.commit(db.session)  # the access log's line
    return task_json(db.session, task)


@blp.route("/tasks/<string:task_id>/complete", methods=["POST"])
@blp.arguments(DataSchema())
@blp.response(200, CaseSchema)
def complete_task(body, task_id: str):
    """Complete a task with its form's data; 422 names each wrong field; 409 if it is no longer open."""
    case = case_service.complete_task(db.session, task_id, body["data"], g.actor)
    case_service.commit(db.session)
    return case_answer(db.session, case)


@blp.route("/tasks/<string:task_id>/claim", methods=["POST"])
@blp.arguments(ClaimSchema())
@blp.response(200, TaskSchema)
def claim_task(body, task_id: str):
    """Take a task, or (a manager) give it to someone with its role."""
    task = case_service.claim_task(db.session, task_id, g.actor, body.get("assignee"))
    case_service.commit(db.session)
    return task_json(db.session, task)
