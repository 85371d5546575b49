"""POST /signals: broadcast a signal to the council's cases (the council's admin, or an analyst rehearsing);
POST /messages: a message from outside starts the pathways whose message start event catches it."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import cases as case_service
from service import policy
from service.errors import Forbidden
from service.models import db

from .access import authenticate
from .schemas import StrictSchema

blp = Blueprint("signals", __name__, description="Signals: one event that every waiting case of the council catches")
blp.before_request(authenticate)


class SignalSchema(StrictSchema):
    name = fields.String(required=True)
    data = fields.Raw(load_default=dict)
    reference = fields.String(load_default=None, metadata={
        "description": "the family's case reference, for a pathway the signal starts"})


class SignalAnswerSchema(Schema):
    reached = fields.List(fields.Integer(), metadata={"description": "the cases that caught it"})
    started = fields.List(fields.Integer(), metadata={"description": "the cases it started"})


@blp.route("/signals", methods=["POST"])
@blp.arguments(SignalSchema)
@blp.response(200, SignalAnswerSchema)
def send_signal(body):
    """Every active case of the council waiting for the signal catches it; every pathway whose start event
    catches it starts a case (with ``reference``)."""
    if not policy.may_broadcast(g.actor):
        raise Forbidden("sending a signal to every case of the council is for its admin")
    answer = case_service.broadcast_signal(db.session, body["name"], body["data"], g.actor,
                                           reference=body["reference"])
    case_service.commit(db.session)
    return answer


class MessageStartSchema(StrictSchema):
    name = fields.String(required=True)
    data = fields.Raw(load_default=dict)
    reference = fields.String(required=True, metadata={"description": "the family's case reference"})


class MessageStartAnswerSchema(Schema):
    started = fields.List(fields.Integer(), metadata={"description": "the cases it started"})


@blp.route("/messages", methods=["POST"])
@blp.arguments(MessageStartSchema)
@blp.response(200, MessageStartAnswerSchema)
@blp.alt_response(409, description="no pathway of the council starts with this message")
def send_message(body):
    """A message from outside the service (a portal, another system): every pathway of the council whose
    message start event catches it starts a case for ``reference`` (you need a role that may start each).
    A message for a case already running goes to ``POST /cases/<id>/messages``."""
    started = case_service.start_by_message(db.session, body["name"], body["data"], g.actor, body["reference"])
    case_service.commit(db.session)
    return {"started": [c.id for c in started]}
