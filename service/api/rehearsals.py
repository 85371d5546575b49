"""Rehearsals (issue 17 item 5): a pathway version run as a sandbox case on a clock the analyst moves, never a
real case. The pages' ``/analyst/rehearsals`` as JSON; everything through ``service.rehearsals`` (whose rule is
``policy.may_rehearse``; adding a scenario to the pathway: ``policy.require_deployer``).

An action is one step written as a scenario file writes it: ``{"complete": "Task_X", "as": "social_worker",
"data": {...}}``, ``{"clock": "+1 week"}`` (or ``"next timer"``, or an ISO instant), ``{"message": "Name",
"data": {...}}``, ``{"signal": "Name"}``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response, g, request
from flask_smorest import Blueprint

from service import rehearsals
from service.errors import InvalidData
from service.models import db

from .access import authenticate
from .schemas import deployment_json

blp = Blueprint("rehearsals", __name__, description="Rehearse a pathway version in a sandbox (role analyst)")
blp.before_request(authenticate)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidData("send a JSON object", {"": "The body must be a JSON object"})
    return body


@blp.route("/rehearsals", methods=["POST"])
def create():
    """Start a rehearsal: ``{"version_id": 7, "data": {start form answers}, "as": "social_worker",
    "name": "...", "at": "2027-01-04T09:00:00+00:00"}`` (``at``: the sandbox clock's start, default now).
    422 names each start form field that is wrong, as starting a case does."""
    body = _body()
    at = body.get("at")
    if at is not None:
        try:
            at = datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise InvalidData("at is an ISO instant with its offset", {"at": "Give an ISO 8601 instant with its "
                                                                             "offset, e.g. 2027-01-04T09:00:00+00:00"})
    version_id = body.get("version_id")
    if not isinstance(version_id, int) or isinstance(version_id, bool):
        raise InvalidData("name the version to rehearse", {"version_id": "Give the id of the pathway version"})
    opened = rehearsals.start(db.session, g.actor, version_id,
                              body.get("data") or {}, name=body.get("name"), role=body.get("as"), at=at)
    db.session.commit()
    return rehearsals.as_json(opened), 201


@blp.route("/rehearsals")
def list_all():
    """The council's rehearsals, the most recently used first (``?version_id=``: of one version)."""
    version_id = request.args.get("version_id", type=int)
    return [rehearsals.summary_json(r) for r in rehearsals.list_rehearsals(db.session, g.actor, version_id)]


@blp.route("/rehearsals/<int:rehearsal_id>")
def get(rehearsal_id: int):
    """A rehearsal: the sandbox clock, status, open tasks with due dates by that clock, timers, the
    notifications the service would have sent, the path so far, what it waits for, and the steps done."""
    return rehearsals.as_json(rehearsals.get(db.session, rehearsal_id, g.actor))


@blp.route("/rehearsals/<int:rehearsal_id>", methods=["DELETE"])
def delete(rehearsal_id: int):
    rehearsals.delete(db.session, g.actor, rehearsal_id)
    db.session.commit()
    return "", 204


@blp.route("/rehearsals/<int:rehearsal_id>/actions", methods=["POST"])
def act(rehearsal_id: int):
    """Do one step (complete a task as a role, move the clock, send a message or signal); the answer is the
    rehearsal after it, with ``fired``: the timers that fired on a clock move."""
    opened, fired = rehearsals.act(db.session, g.actor, rehearsal_id, _body())
    db.session.commit()
    return rehearsals.as_json(opened, fired)


@blp.route("/rehearsals/<int:rehearsal_id>/scenario")
def scenario(rehearsal_id: int):
    """The rehearsal recorded as a scenario file (``?name=``: what it shows), to download."""
    filename, text = rehearsals.scenario(db.session, g.actor, rehearsal_id, request.args.get("name"))
    return Response(text, mimetype="application/json", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


@blp.route("/rehearsals/<int:rehearsal_id>/scenario", methods=["POST"])
def add_scenario(rehearsal_id: int):
    """Add the recorded scenario to the pathway (``{"name": ...}``): a new deployment with the file, through the
    ordinary deploy (a draft where the council requires approval). 201 with the deployment, as an upload."""
    result = rehearsals.add_to_pathway(db.session, g.actor, rehearsal_id, _body().get("name"))
    db.session.commit()
    return deployment_json(result), 201
