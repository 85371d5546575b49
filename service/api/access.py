"""Who is calling: bearer-token authentication and role checks for the API."""
from __future__ import annotations

from flask import g, jsonify, request

from service.auth import user_for_token
from service.cases import Actor
from service.errors import Forbidden
from service.models import db


def authenticate():
    """Before every API request: 401 unless the bearer token is a user's."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    user = user_for_token(db.session, token)
    if user is None:
        return jsonify({"message": "sign in: send 'Authorization: Bearer <your token>'"}), 401
    g.user = user
    g.actor = Actor.of(user)
    return None


def require_role(*roles: str) -> None:
    """403 unless the caller has one of ``roles`` (admin always passes)."""
    if not (set(roles) | {"admin"}) & set(g.actor.roles):
        raise Forbidden(f"this needs the role {' or '.join(roles)}")
