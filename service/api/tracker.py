"""GET /tracker: AfC's weekly Step up / Step down Transitions Meeting tracker, built live from the cases."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import tracker as tracker_service
from service.models import db

from .access import authenticate, require_role

blp = Blueprint("tracker", __name__, description="AfC Step up / Step down Transitions Meeting tracker")
blp.before_request(authenticate)


class TrackerDocumentSchema(Schema):
    value = fields.String()
    label = fields.String()
    received = fields.Boolean()


class TrackerRowSchema(Schema):
    case_id = fields.Integer()
    reference = fields.String()
    child_name = fields.String(allow_none=True)
    process = fields.String()
    direction = fields.String(metadata={"description": "step up | step down"})
    sending_manager = fields.String(allow_none=True)
    receiving_manager = fields.String(allow_none=True)
    allocated = fields.Boolean()
    allocated_worker = fields.String(allow_none=True)
    documents = fields.List(fields.Nested(TrackerDocumentSchema))
    documents_received = fields.List(fields.String())
    documents_missing = fields.List(fields.String())
    days_in_transition = fields.Integer()
    started_on = fields.String()
    transitions_meeting_date = fields.String(allow_none=True)
    decision_date = fields.String(allow_none=True)
    stage = fields.List(fields.String(), metadata={"description": "the open steps of the case"})


@blp.route("/tracker")
@blp.response(200, TrackerRowSchema(many=True))
def list_tracker():
    """The cases in transition (step up and step down), longest in transition first."""
    require_role(*tracker_service.AFC_ROLES)
    return [row.to_json() for row in tracker_service.rows(db.session)]
