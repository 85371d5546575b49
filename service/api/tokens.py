"""The caller's own API tokens: list them, and revoke one (by default the one this request carries).

Tokens are a person's, not a council's: these endpoints need no council. A token is issued on the command
line (``flask users token NAME [--days N]``), never through the API, so that a stolen token cannot renew
itself past its expiry.
"""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import auth
from service.models import db

from .access import authenticate_person, bearer_token

blp = Blueprint("tokens", __name__, description="Your API tokens: list and revoke")
blp.before_request(authenticate_person)


class TokenSchema(Schema):
    id = fields.Integer()
    label = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class RevokeSchema(Schema):
    id = fields.Integer(load_default=None, strict=True,
                        metadata={"description": "one of your tokens; without it, the token of this request"})


@blp.route("/tokens")
@blp.response(200, TokenSchema(many=True))
def list_tokens():
    """Your tokens, newest first (never the tokens themselves: they are shown once, when issued)."""
    return auth.tokens_of(db.session, g.user)


@blp.route("/tokens/revoke", methods=["POST"])
@blp.arguments(RevokeSchema())
@blp.response(200, TokenSchema)
def revoke_token(body):
    """Revoke one of your tokens; from then on it gets 401. 404 if you hold no token with that id."""
    if body["id"] is not None:
        revoked = auth.revoke_token(db.session, g.user, token_id=body["id"])
    else:
        revoked = auth.revoke_token(db.session, g.user, token=bearer_token())
    db.session.commit()
    return revoked
