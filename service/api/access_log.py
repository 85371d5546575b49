"""The access log: who opened which case or task, and when; for the council's auditor."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from service import access_log
from service.models import AccessEvent, db

from .access import authenticate

blp = Blueprint("access-log", __name__, description="The access log (the auditor's)")
blp.before_request(authenticate)


class AccessQuerySchema(Schema):
    case = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    user = fields.String(validate=validate.Length(max=80))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))


class AccessEventSchema(Schema):
    at = fields.DateTime()
    user = fields.String()
    case = fields.Integer()
    task = fields.String(allow_none=True)
    purpose = fields.String(metadata={"description": "case, case_history, task (API); case_page, diagram, "
                                                     "task_page (pages)"})


@blp.route("/access-log")
@blp.arguments(AccessQuerySchema(), location="query")
@blp.response(200, AccessEventSchema(many=True))
def list_access(query):
    """Who opened which case or task, newest first, 50 a page; 403 unless the caller is the council's auditor."""
    rows = access_log.entries(db.session, g.actor, case_id=query.get("case"), user=query.get("user"),
                              page=query["page"])
    return [_json(row) for row in rows]


def _json(row: AccessEvent) -> dict:
    return {"at": row.at, "user": row.actor, "case": row.case_id, "task": row.task_id, "purpose": row.purpose}
