"""POST /signals: broadcast a signal to the council's cases (the council's admin, or an analyst rehearsing);
POST /messages: a message from outside starts the pathways whose message start event catches it."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import broadcasts
from service import cases as case_service
from service.errors import InvalidData
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
    reached = fields.List(fields.Integer(), metadata={"description": "the cases that caught it in this request"})
    started = fields.List(fields.Integer(), metadata={"description": "the cases it started"})
    broadcast = fields.Integer(allow_none=True, metadata={
        "description": f"when more cases wait for it than a request reaches ({case_service.SIGNAL_BATCH}), the "
                       f"broadcast that reaches the rest in the background, a batch at a time "
                       f"(``GET /signals/<id>``); else null"})


class BroadcastSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    sent_by = fields.String()
    sent_at = fields.DateTime()
    reached = fields.Integer(metadata={"description": "the cases that have caught it so far"})
    finished_at = fields.DateTime(allow_none=True, metadata={"description": "null while it is on its way"})


@blp.route("/signals", methods=["POST"])
@blp.arguments(SignalSchema())
@blp.response(200, SignalAnswerSchema)
def send_signal(body):
    """Every active case of the council waiting for the signal catches it; every pathway whose start event
    catches it starts a case (with ``reference``). The first 100 cases catch it in this request; when more wait,
    the timer service reaches the rest a batch at a time (``broadcast``: ``GET /signals/<id>`` says how far it
    has got). Only the cases there are now catch it."""
    answer = broadcasts.send(db.session, body["name"], body["data"], g.actor, reference=body["reference"])
    case_service.commit(db.session)
    return answer


@blp.route("/signals/<int:broadcast_id>")
@blp.response(200, BroadcastSchema)
def signal_on_its_way(broadcast_id: int):
    """How far a signal on its way to many cases has got (the council's admin)."""
    return broadcasts.sent(db.session, broadcast_id, g.actor)


class MessageStartSchema(StrictSchema):
    name = fields.String(required=True)
    data = fields.Raw(load_default=dict)
    reference = fields.String(load_default=None, metadata={
        "description": "the family's case reference, for the pathways the message starts; with "
                       "``correlation_keys``, also the reference of the running case it may reach (Camunda 7's "
                       "business key)"})
    correlation_key = fields.Raw(load_default=None, metadata={
        "description": "Camunda 8: the message reaches the running cases whose zeebe:subscription correlationKey "
                       "has this value (text or a number)"})
    correlation_keys = fields.Dict(keys=fields.String(), load_default=None, metadata={
        "description": "Camunda 7: the message reaches the running cases whose data has each of these values"})
    all = fields.Boolean(load_default=False, metadata={
        "description": "with a correlation key that matches several cases: send it to each (else 409)"})


class MessageStartAnswerSchema(Schema):
    reached = fields.List(fields.Integer(), metadata={"description": "the running cases that took it"})
    started = fields.List(fields.Integer(), metadata={"description": "the cases it started"})


@blp.route("/messages", methods=["POST"])
@blp.arguments(MessageStartSchema())
@blp.response(200, MessageStartAnswerSchema)
@blp.alt_response(409, description="no case waits for it with this correlation and no pathway starts with it; "
                                   "or its correlation matches several cases (their ids in ``matched``)")
def send_message(body):
    """A message from outside the service (a portal, another system).

    With a correlation (``correlation_key`` for Camunda 8 diagrams, ``correlation_keys`` for Camunda 7's
    correlation by case data), it reaches the one running case that waits for it with that correlation (all
    that match with ``all``); when none does, it starts the pathways whose message start event catches it.
    Without one, it starts every pathway of the council whose message start event catches it, for
    ``reference`` (you need a role that may start each). A message for a case you know goes to
    ``POST /cases/<id>/messages``.

    A correlation compares each waiting case's data or key, so it is refused (422) when more than 10,000 cases
    could take it: with ``correlation_keys``, give the case's ``reference`` too."""
    if body["correlation_key"] is not None or body["correlation_keys"]:
        if isinstance(body["correlation_key"], (dict, list, bool)):
            raise InvalidData("the correlation key is a value", {"correlation_key": "Give text or a number"})
        answer = case_service.correlate_message(db.session, body["name"], body["data"], g.actor,
                                                key=body["correlation_key"], variables=body["correlation_keys"],
                                                all_=body["all"], reference=body["reference"])
        case_service.commit(db.session)
        return answer
    started = case_service.start_by_message(db.session, body["name"], body["data"], g.actor, body["reference"])
    case_service.commit(db.session)
    return {"reached": [], "started": [c.id for c in started]}
