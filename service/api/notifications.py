"""GET /notifications: the caller's reminders and escalations."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from service import notifications as notification_service
from service.models import db

from .access import authenticate
from .schemas import NotificationSchema

blp = Blueprint("notifications", __name__, description="Reminders and escalations")
blp.before_request(authenticate)


@blp.route("/notifications")
@blp.response(200, NotificationSchema(many=True))
def list_notifications():
    return notification_service.for_user(db.session, g.user)
