"""The caller's reminders and escalations: list them (``?unread=true``: unread only) and mark them read."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import cases as case_service
from service import notifications as notification_service
from service.models import db

from .access import authenticate
from .schemas import NotificationSchema, after_field

blp = Blueprint("notifications", __name__, description="Reminders and escalations")
blp.before_request(authenticate)


class NotificationQuerySchema(Schema):
    unread = fields.Boolean(load_default=False)
    after = after_field()


class MarkedSchema(Schema):
    marked = fields.Integer()
    unread = fields.Integer()


@blp.route("/notifications")
@blp.arguments(NotificationQuerySchema(), location="query")
@blp.response(200, NotificationSchema(many=True))
def list_notifications(query):
    """Newest first, a page at a time (X-Next-Cursor: the ``after`` of the next); ``unread=true`` the unread only."""
    notes = notification_service.for_user(db.session, g.user, unread_only=query["unread"], after=query.get("after"))
    more = len(notes) == notification_service.PAGE
    return notes, 200, ({"X-Next-Cursor": notification_service.cursor(notes[-1])} if more else {})


@blp.route("/notifications/<int:notification_id>/read", methods=["POST"])
@blp.response(200, NotificationSchema)
def mark_read(notification_id: int):
    """Mark one of your notifications read (404 for anyone else's)."""
    note = notification_service.mark_read(db.session, notification_id, g.actor)
    case_service.commit(db.session)
    return note


@blp.route("/notifications/read", methods=["POST"])
@blp.response(200, MarkedSchema)
def mark_all_read():
    """Mark all your notifications read; how many were marked."""
    marked = notification_service.mark_all_read(db.session, g.actor)
    case_service.commit(db.session)
    return {"marked": marked, "unread": notification_service.unread_count(db.session, g.user.id)}
