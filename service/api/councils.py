"""The council's own settings (its admin), and the operator's view of every council.

``/council``: the acting council's settings: read by anyone who works for it, changed by its admin.
``/operator/...``: the service's operator creates councils with their first admin and sees health and
counts per council; no operator endpoint returns a child's data.
"""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import councils as council_service
from service.errors import InvalidData
from service.models import db

from .access import authenticate, authenticate_operator, require_role

blp = Blueprint("council", __name__, description="The acting council's settings")
blp.before_request(authenticate)

operator_blp = Blueprint("operator", __name__, description="The service's operator: councils, health, counts")
operator_blp.before_request(authenticate_operator)


class CouncilSettingsSchema(Schema):
    key = fields.String(dump_only=True)
    name = fields.String()
    country = fields.String(metadata={"description": "england | wales | scotland | northern_ireland"})
    closure_days = fields.List(fields.String(), metadata={"description": "ISO dates the council is closed"})
    office_opens = fields.String(metadata={"description": "HH:MM, London time"})
    office_closes = fields.String()
    email_sender = fields.String(allow_none=True)
    retention_days = fields.Integer(allow_none=True)
    retention_by_pathway = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True,
                                       metadata={"description": "days after closure per pathway key, "
                                                                "overriding retention_days"})
    brand_colour = fields.String(allow_none=True)
    requires_approval = fields.Boolean()


class NewCouncilSchema(Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)
    admin = fields.String(load_default=None, metadata={"description": "the first admin's user name"})
    admin_email = fields.String(load_default=None)
    settings = fields.Dict(load_default=dict)


class NewCouncilAnswerSchema(Schema):
    council = fields.Nested(CouncilSettingsSchema)
    admin_token = fields.String(allow_none=True)


class CouncilCountsSchema(Schema):
    key = fields.String()
    name = fields.String()
    pathways = fields.Integer()
    cases = fields.Dict(keys=fields.String(), values=fields.Integer())
    open_tasks = fields.Integer()
    overdue_tasks = fields.Integer()
    pending_timers = fields.Integer()
    unsent_emails = fields.Integer()
    staff = fields.Integer()


class HealthSchema(Schema):
    database = fields.String()
    councils = fields.List(fields.Nested(CouncilCountsSchema))


@blp.route("/council")
@blp.response(200, CouncilSettingsSchema)
def get_council():
    """The settings of the council you act for."""
    return council_service.settings_json(g.council)


@blp.route("/council", methods=["PATCH"])
@blp.arguments(CouncilSettingsSchema())
@blp.response(200, CouncilSettingsSchema)
def change_council(changes):
    """Change the council's settings (its admin only); 422 names each wrong setting."""
    require_role("admin")
    council_service.update_settings(g.council, changes)
    db.session.commit()
    return council_service.settings_json(g.council)


@operator_blp.route("/operator/councils")
@operator_blp.response(200, CouncilSettingsSchema(many=True))
def list_councils():
    return [council_service.settings_json(c) for c in council_service.list_councils(db.session)]


@operator_blp.route("/operator/councils", methods=["POST"])
@operator_blp.arguments(NewCouncilSchema())
@operator_blp.response(201, NewCouncilAnswerSchema)
def create_council(body):
    """Create a council with its settings and its first admin (whose API token is answered once)."""
    if not isinstance(body["settings"], dict):
        raise InvalidData("settings must be an object", {"settings": "Send the settings as a JSON object"})
    council, token = council_service.create_council(db.session, body["key"], body["name"], admin=body["admin"],
                                                    admin_email=body["admin_email"], settings=body["settings"])
    db.session.commit()
    return {"council": council_service.settings_json(council), "admin_token": token}


@operator_blp.route("/operator/health")
@operator_blp.response(200, HealthSchema)
def health():
    """The service's health and its counts per council (numbers only: no case data)."""
    return {"database": db.session.get_bind().dialect.name, "councils": council_service.counts(db.session)}
