"""Who is calling, and for which council: bearer-token authentication for the API.

A user who works for several councils (a regional emergency duty team) names the one they act for in
the ``X-Council`` header (its key, e.g. ``halton``); a user of one council need not. Everything after
this runs in that council's scope (``service.tenancy``).
"""
from __future__ import annotations

from flask import g, jsonify, request

from service import policy, tenancy
from service.auth import TokenRefused, caller_for_token, chosen_council, user_for_token
from service.models import User, db
from service.policy import Actor

COUNCIL_HEADER = "X-Council"


def authenticate():
    """Before every council API request: 401 unless the bearer token is a user's; then act for their council."""
    wanted = request.headers.get(COUNCIL_HEADER, "").strip()
    try:
        caller = caller_for_token(db.session, bearer_token(), wanted)
    except TokenRefused as refused:
        return _unauthorised(refused)
    if caller is None:
        return _unauthorised(None)
    user, held = caller
    index = chosen_council([c.key for c, _ in held], wanted)
    if index is not None:
        found = held[index]
    elif wanted:
        return jsonify({"message": f"you do not work for a council '{wanted}'",
                        "councils": [c.key for c, _ in held]}), 403
    elif not held:
        return jsonify({"message": "you do not work for any council: this part of the service is for "
                                   "council staff"}), 403
    else:
        return jsonify({"message": f"you work for several councils: name the one you act for in the "
                                   f"{COUNCIL_HEADER} header", "councils": [c.key for c, _ in held]}), 400
    council, roles = found
    tenancy.act_for(db.session, council, user.id)
    g.user, g.council = user, council
    g.actor = Actor(user.name, roles, user.id, council.id)
    return None


def authenticate_operator():
    """Before every operator API request: 401 without a token, 403 unless the user runs the service."""
    user = _user()
    if not isinstance(user, User):
        return _unauthorised(user)
    if not user.is_operator:
        return jsonify({"message": "this is for the service's operator"}), 403
    g.user, g.council = user, None
    g.actor = Actor(user.name, (policy.OPERATOR,), user.id, None)
    return None


def authenticate_person():
    """Before every request about the caller themselves (their tokens): 401 unless the token is theirs."""
    user = _user()
    if not isinstance(user, User):
        return _unauthorised(user)
    g.user, g.council = user, None
    g.actor = Actor(user.name, (), user.id, None)
    return None


def require_role(*roles: str) -> None:
    """403 unless the caller holds one of ``roles`` in the acting council (its admin always passes)."""
    policy.require_role(g.actor, *roles)


def bearer_token() -> str:
    """The token in the request's ``Authorization: Bearer`` header (never a URL: logs keep URLs)."""
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _user() -> User | TokenRefused | None:
    """The caller; or why their token is refused (revoked, expired); or None without a known token."""
    try:
        user = user_for_token(db.session, bearer_token())
    except TokenRefused as refused:
        return refused
    if user is not None:
        tenancy.identify(db.session, user.id)
    return user


def _unauthorised(refused: TokenRefused | None = None):
    message = refused.message if refused else "sign in: send 'Authorization: Bearer <your token>'"
    return jsonify({"message": message}), 401
