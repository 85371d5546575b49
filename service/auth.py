"""Users, their roles, API tokens and passwords."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.engine import clock
from service.engine.parser import role_key
from service.errors import InvalidData
from service.models import Council, Membership, User

MAX_FAILED_SIGN_INS = 5
LOCK_OUT_FOR = timedelta(minutes=15)
_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def save_user(session: Session, name: str, roles: list[str], *, council: Council | None = None,
              token: str | None = None, password: str | None = None, email: str | None = None,
              display_name: str | None = None, operator: bool | None = None) -> tuple[User, str]:
    """Create a user, or update one; give them ``roles`` in ``council`` (replacing their roles there).

    Returns the user and their API token (a new one unless ``token`` is given).
    """
    if not name or len(name) > 80 or not name.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise InvalidData("bad user name", {"name": "Use letters, digits, '.', '-' and '_' (at most 80)"})
    if roles and council is None:
        raise InvalidData("roles are held in a council", {"council": "Name the council the roles are in"})
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    token = token or secrets.token_urlsafe(24)
    user.token_hash = hash_token(token)
    if council is not None:
        set_roles(session, user, council, roles)
    if password is not None:
        user.password_hash = _hasher.hash(password)
    if email is not None:
        user.email = email
    if display_name is not None:
        user.display_name = display_name
    if operator is not None:
        user.is_operator = operator
    session.flush()
    return user, token


def set_roles(session: Session, user: User, council: Council, roles: list[str]) -> None:
    """Make ``roles`` the user's roles in ``council`` (none: they no longer work for it)."""
    for row in session.scalars(select(Membership).where(Membership.user_id == user.id,
                                                        Membership.council_id == council.id)):
        session.delete(row)
    session.flush()
    session.add_all(Membership(user_id=user.id, council_id=council.id, role=role_key(r)) for r in sorted(set(roles)))


def roles_in(session: Session, user: User, council: Council | int) -> tuple[str, ...]:
    """The user's roles in one council (empty if they do not work for it)."""
    council_id = council if isinstance(council, int) else council.id
    return tuple(sorted(session.scalars(select(Membership.role).where(Membership.user_id == user.id,
                                                                      Membership.council_id == council_id))))


def councils_of(session: Session, user: User) -> list[Council]:
    """The councils the user works for, by name."""
    ids = select(Membership.council_id).where(Membership.user_id == user.id)
    return list(session.scalars(select(Council).where(Council.id.in_(ids)).order_by(Council.name)))


def user_for_token(session: Session, token: str) -> User | None:
    if not token:
        return None
    return session.scalars(select(User).where(User.token_hash == hash_token(token))).first()


class SignInRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sign_in(session: Session, name: str, password: str) -> User:
    """Check a password; lock the account for a while after repeated failures."""
    user = session.scalars(select(User).where(User.name == name)).first()
    now = clock.now()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise SignInRefused("This account is locked after too many failed attempts. Try again in 15 minutes.")
    if user is None or not user.password_hash or not _verify(user.password_hash, password):
        if user is not None:
            user.failed_sign_ins += 1
            if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
                user.locked_until, user.failed_sign_ins = now + LOCK_OUT_FOR, 0
        raise SignInRefused("The user name or password is not right")
    user.failed_sign_ins, user.locked_until = 0, None
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
