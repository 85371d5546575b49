"""Users, their roles, passwords, page sessions and API tokens: every credential rule of the service.

Who may do what once signed in is ``service.policy``'s; this module decides who someone is. The settings
(``service.config.SIGN_IN_DEFAULTS``) are read from the running app, and the defaults outside one.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context
from sqlalchemy import Select, bindparam, case, delete, event, func, inspect, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service import tenancy
from service.config import SIGN_IN_DEFAULTS
from service.engine import clock
from service.engine.parser import role_key
from service.errors import InvalidData, NotFound
from service.models import ApiToken, Council, Membership, SignInAttempt, SignInLock, User, attached

_hasher = PasswordHasher()


def setting(key: str) -> int:
    """A sign-in, session or token setting of the running app (its default outside one)."""
    if has_app_context():
        return int(current_app.config.get(key, SIGN_IN_DEFAULTS[key]))
    return SIGN_IN_DEFAULTS[key]


# -- users and roles -----------------------------------------------------------------------------

def save_user(session: Session, name: str, roles: list[str], *, council: Council | None = None,
              token: str | None = None, password: str | None = None, email: str | None = None,
              display_name: str | None = None, operator: bool | None = None) -> tuple[User, str | None]:
    """Create a user, or update one; give them ``roles`` in ``council`` (replacing their roles there).

    Returns the user and the API token issued now: ``token`` if given (the demo's and tests' known tokens),
    else a new random one for a new user; an existing user keeps their tokens (None: use :func:`issue_token`).
    A new password or new roles end every page session of the user.
    """
    if not name or len(name) > 80 or not name.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise InvalidData("bad user name", {"name": "Use letters, digits, '.', '-' and '_' (at most 80)"})
    if roles and council is None:
        raise InvalidData("roles are held in a council", {"council": "Name the council the roles are in"})
    if password is not None:
        check_password_policy(name, password)
    user = session.scalars(select(User).where(User.name == name)).first()
    new = user is None
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    if token is not None:
        _keep_token(session, user, token)
    elif new:
        token = issue_token(session, user, label="issued with the account")
    if council is not None:
        set_roles(session, user, council, roles)
    if password is not None:
        user.password_hash = _hasher.hash(password)
        end_sessions(session, user)
    if email is not None:
        user.email = email
    if display_name is not None:
        user.display_name = display_name
    if operator is not None and operator != user.is_operator:
        user.is_operator = operator
        end_sessions(session, user)
    session.flush()
    return user, token


def check_password_policy(name: str, password: str) -> None:
    """A password set through the service: long enough, and not the user name (refused with the reason).

    Passwords checked at sign-in are not re-checked: a person set up before the policy can still sign in.
    """
    least = setting("PASSWORD_MIN_LENGTH")
    if len(password) < least:
        raise InvalidData("the password is too short", {"password": f"Use at least {least} characters"})
    if len(password) > 1024:
        raise InvalidData("the password is too long", {"password": "Use at most 1024 characters"})
    if password.strip().casefold() == name.casefold():
        raise InvalidData("the password is the user name", {"password": "Choose a password that is not your user name"})


def set_roles(session: Session, user: User, council: Council, roles: list[str]) -> None:
    """Make ``roles`` the user's roles in ``council`` (none: they no longer work for it).

    A change ends every page session of the user: what they may see is settled again when they sign in.
    """
    wanted = {role_key(r) for r in roles}
    with tenancy.in_council(session, council):  # on PostgreSQL, row-level security shows the council's rows
        held = session.scalars(select(Membership).where(Membership.user_id == user.id,
                                                        Membership.council_id == council.id)).all()
        if {row.role for row in held} == wanted:
            return
        for row in held:
            session.delete(row)
        session.flush()
        session.add_all(Membership(user_id=user.id, council_id=council.id, role=r) for r in sorted(wanted))
        session.flush()
    end_sessions(session, user)


def roles_in(session: Session, user: User, council: Council | int) -> tuple[str, ...]:
    """The user's roles in one council (empty if they do not work for it)."""
    council_id = council if isinstance(council, int) else council.id
    return tuple(sorted(session.scalars(select(Membership.role).where(Membership.user_id == user.id,
                                                                      Membership.council_id == council_id))))


def councils_of(session: Session, user: User) -> list[Council]:
    """The councils the user works for, by name."""
    ids = select(Membership.council_id).where(Membership.user_id == user.id)
    return list(session.scalars(select(Council).where(Council.id.in_(ids)).order_by(Council.name)))


# -- signing in ----------------------------------------------------------------------------------

class SignInRefused(Exception):
    """The same answer whether the name is unknown, the password wrong or the name locked from here."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooManyAttempts(SignInRefused):
    """A rate limit: too many attempts at this name, or from this address, in the window."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


WRONG = "The user name or password is not right"


def sign_in(session: Session, name: str, password: str, address: str | None) -> User:
    """Check a password, so that parallel guesses cannot get round the lock or tell names apart.

    The attempt is counted (committed) before the password is checked, atomically per name and address:
    after ``SIGN_IN_LOCK_AFTER`` attempts no more are checked until the lock ends. An unknown name costs
    the same argon2 check as a wrong password, and locks the same way.
    """
    name, address = name[:80], (address or "unknown")[:45]
    now = clock.now()
    attempts, last_attempt_at = _count_attempt(session, name, address, now)
    _enforce_rate_limits(session, name, address, now)
    if attempts > setting("SIGN_IN_LOCK_AFTER"):
        minutes = max(1, round((last_attempt_at + _lock_time() - now).total_seconds() / 60))
        raise SignInRefused(f"Signing in as this user from your address is locked after too many failed "
                            f"attempts. Try again in {minutes} minutes.")
    user = session.scalars(select(User).where(User.name == name)).first()
    stored = user.password_hash if user is not None else None
    session.commit()  # no transaction stays open while argon2 runs
    if not _verify(stored or _dummy_hash(), password) or not stored:
        raise SignInRefused(WRONG)
    session.execute(delete(SignInLock).where(SignInLock.name == name, SignInLock.address == address))
    session.execute(delete(SignInAttempt).where(SignInAttempt.name == name, SignInAttempt.address == address,
                                                SignInAttempt.at == now))  # a right password is no attempt
    return user


def _lock_time() -> timedelta:
    return timedelta(minutes=setting("SIGN_IN_LOCK_MINUTES"))


def _count_attempt(session: Session, name: str, address: str, now: datetime) -> tuple[int, datetime]:
    """Log the attempt and add it to its name and address's count in one statement (no read-modify-write).

    The count restarts once the lock time has passed since the last counted attempt; attempts made while
    locked do not lengthen the lock. Committed at once, so every parallel attempt sees it.
    """
    since = now - _lock_time()
    window = now - timedelta(minutes=setting("SIGN_IN_WINDOW_MINUTES"))
    # Prune what no longer counts; rows another attempt is pruning are skipped (no deadlock between them).
    session.execute(delete(SignInAttempt).where(SignInAttempt.id.in_(
        select(SignInAttempt.id).where(SignInAttempt.at < window).with_for_update(skip_locked=True))))
    session.execute(delete(SignInLock).where(tuple_(SignInLock.name, SignInLock.address).in_(
        select(SignInLock.name, SignInLock.address).where(SignInLock.last_attempt_at < since)
        .with_for_update(skip_locked=True))))
    session.add(SignInAttempt(name=name, address=address, at=now))
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(SignInLock)
    lock = SignInLock.__table__.c
    expired = lock.last_attempt_at < since
    counted = or_(expired, lock.attempts < setting("SIGN_IN_LOCK_AFTER"))
    statement = insert.values(name=name, address=address, attempts=1, last_attempt_at=now).on_conflict_do_update(
        index_elements=[lock.name, lock.address],
        set_={"attempts": case((expired, 1), else_=lock.attempts + 1),
              "last_attempt_at": case((counted, now), else_=lock.last_attempt_at)},
    ).returning(lock.attempts, lock.last_attempt_at)
    attempts, last_attempt_at = session.execute(statement).one()
    session.commit()
    return attempts, last_attempt_at


def _enforce_rate_limits(session: Session, name: str, address: str, now: datetime) -> None:
    """429 when the name, or the address, has had too many attempts in the sliding window (all processes')."""
    window = timedelta(minutes=setting("SIGN_IN_WINDOW_MINUTES"))
    for column, value, limit, what in (
            (SignInAttempt.name, name, setting("SIGN_IN_LIMIT_PER_ACCOUNT"), "this user name"),
            (SignInAttempt.address, address, setting("SIGN_IN_LIMIT_PER_ADDRESS"), "your address")):
        recent = select(SignInAttempt.at).where(column == value, SignInAttempt.at > now - window)
        count = session.scalar(select(func.count()).select_from(recent.subquery()))
        if count > limit:
            # The window slides: the wait is until enough of these attempts are older than it.
            freed_at = session.scalar(recent.order_by(SignInAttempt.at).offset(count - limit).limit(1))
            wait = (clock.as_utc(freed_at) + window - now).total_seconds() if freed_at else window.total_seconds()
            session.commit()
            raise TooManyAttempts(f"There have been too many attempts to sign in as {what}. "
                                  f"Wait {max(1, round(wait / 60))} minutes and try again.", max(1, int(wait) + 1))


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, checked for an unknown name so that it takes as long as a real one."""
    return _hasher.hash(secrets.token_urlsafe(32))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# -- page sessions -------------------------------------------------------------------------------

#: What a page session's signed cookie holds besides the user's id.
VERSION, SIGNED_IN_AT, SEEN_AT = "session_version", "signed_in_at", "seen_at"


def start_session(user: User) -> dict[str, Any]:
    """What a new page session carries: the user's session version and when it began."""
    now = clock.now().timestamp()
    return {VERSION: user.session_version, SIGNED_IN_AT: now, SEEN_AT: now}


def session_holds(user: User, held: Mapping[str, Any]) -> bool:
    """A page session holds while its user has not ended their sessions, it has been used within the idle
    timeout, and it is younger than its lifetime."""
    now = clock.now().timestamp()
    try:
        version, signed_in_at, seen_at = int(held[VERSION]), float(held[SIGNED_IN_AT]), float(held[SEEN_AT])
    except (KeyError, TypeError, ValueError):
        return False  # a cookie from before session versions, or not one of ours
    return (version == user.session_version
            and now - seen_at <= setting("SESSION_IDLE_MINUTES") * 60
            and now - signed_in_at <= setting("SESSION_LIFETIME_HOURS") * 3600)


def end_sessions(session: Session, user: User) -> None:
    """End every page session of ``user`` (on every device): one atomic UPDATE, whatever runs in parallel."""
    session.flush()
    session.execute(update(User).where(User.id == user.id).values(session_version=User.session_version + 1)
                    .execution_options(synchronize_session=False))
    session.refresh(user, ["session_version"])


# -- API tokens ----------------------------------------------------------------------------------

class TokenRefused(Exception):
    """A token that was real once, but is revoked or expired (an unknown token is simply no one's)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, *, label: str = "", days: int | None = None,
                token: str | None = None) -> str:
    """A new API token for ``user``, valid for ``days`` (default ``API_TOKEN_DAYS``); shown only now."""
    days = setting("API_TOKEN_DAYS") if days is None else days
    if days < 1:
        raise InvalidData("a token lasts at least a day", {"days": "Give a number of days, at least 1"})
    token = token or secrets.token_urlsafe(32)
    now = clock.now()
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label=label[:80], created_at=now,
                         expires_at=now + timedelta(days=days)))
    session.flush()
    return token


def _keep_token(session: Session, user: User, token: str) -> None:
    """Make sure ``user`` holds this known token (issued once; refused if it is someone else's)."""
    held = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if held is None:
        issue_token(session, user, label="given", token=token)
    elif held.user_id != user.id:
        raise InvalidData("that token is taken", {"token": "Choose another token"})


def user_for_token(session: Session, token: str) -> User | None:
    """The user a bearer token is for; None if it is no one's; :class:`TokenRefused` if revoked or expired."""
    if not token:
        return None
    held = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if held is None:
        return None
    _check_token(session, held)
    return session.get(User, held.user_id)


#: How long a token's councils and roles are kept in the process (the token and its user are read every time).
CALLER_CACHE_SECONDS = 30
_callers_lock = threading.Lock()


def _callers() -> dict[str, tuple[float, int, int, tuple[tuple[dict[str, Any], tuple[str, ...]], ...]]]:
    """The running app's cache of callers (one per app: another app may be another database)."""
    return current_app.extensions.setdefault("api_callers", {}) if has_app_context() else {}


@event.listens_for(Session, "before_flush")
def _caller_deleted(session: Session, flush_context, instances) -> None:
    """A deleted user's cached roles go with them: SQLite may give the next new user the same id (and a new
    user starts at the same session version), so an entry kept by id alone would lend them the old roles.
    SQLite runs one service process; PostgreSQL never reuses an id."""
    if any(isinstance(row, User) for row in session.deleted) and has_app_context():
        with _callers_lock:
            _callers().clear()


def caller_for_token(session: Session, token: str, council_key: str = ""
                     ) -> tuple[User, list[tuple[Council, tuple[str, ...]]]] | None:
    """The user a bearer token is for, with each council they work for and their roles there; None if the token
    is no one's; :class:`TokenRefused` if revoked or expired.

    The token and its user are read on every call, in one statement, so a revoked token, signing out or new roles
    (which raise the user's session version) end the token's access at once, in every process. The councils and
    roles are kept for :data:`CALLER_CACHE_SECONDS` with the user's session version they were read at; a
    council's settings changed in another process are seen within that time.

    On PostgreSQL, when the cached caller acts for one council (``council_key``, the ``X-Council`` header, picks
    it: :func:`chosen_council`), the same statement sets the transaction's scope to it, and only if the row it
    reads shows the token unrevoked and unexpired and its user as cached (same id, same session version): then
    :func:`tenancy.act_for` for that council sends nothing.
    """
    if not token:
        return None
    digest = hash_token(token)
    scope = _scope_for(session, digest, council_key)
    # On the session's connection: these tables hold no council's data, and through ``session.execute`` the
    # council wall's criteria would make each run a new statement to key (service.tenancy).
    connection = session.connection()
    if scope is None:
        row = connection.execute(_token_and_user(), {"digest": digest}).first()
    else:
        row = connection.execute(_token_user_and_scope(), {"digest": digest, "scope_now": clock.now(), **scope}).first()
    if row is None:
        return None
    if scope is not None:
        tenancy.scope_was_set(session, row)
    held = row._mapping
    _check_token(session, _Token(held["token_id"], held["expires_at"], held["revoked_at"], held["last_used_at"]))
    user = _attached(session, User, {c.name: held[c] for c in _USER_COLUMNS})
    callers = _callers()
    with _callers_lock:
        cached = callers.get(digest)
    if cached is not None and cached[0] > time.monotonic() and cached[1:3] == (user.id, user.session_version):
        return user, [(_attached(session, Council, values), roles) for values, roles in cached[3]]
    tenancy.identify(session, user.id)  # on PostgreSQL row-level security shows the user their memberships
    councils = councils_of(session, user)
    held_roles: dict[int, list[str]] = {}
    for council_id, role in session.execute(select(Membership.council_id, Membership.role)
                                            .where(Membership.user_id == user.id).order_by(Membership.role)):
        held_roles.setdefault(council_id, []).append(role)
    found = [(c, tuple(held_roles.get(c.id, ()))) for c in councils]
    entry = tuple((_column_values(c), roles) for c, roles in found)
    with _callers_lock:
        callers[digest] = (time.monotonic() + CALLER_CACHE_SECONDS, user.id, user.session_version, entry)
    return user, found


@dataclass(frozen=True)
class _Token:
    """What :func:`_check_token` reads of a token."""

    id: int
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


_USER_COLUMNS = User.__table__.columns
_Row = TypeVar("_Row", Council, User)


@functools.cache
def _token_and_user() -> Select:
    """:func:`caller_for_token`'s statement, built once (every API request sends it): plain columns, not ORM rows
    (a token and a user as ORM rows cost as much again as the statement)."""
    tokens = ApiToken.__table__
    return (select(tokens.c.id.label("token_id"), tokens.c.expires_at, tokens.c.revoked_at, tokens.c.last_used_at,
                   *_USER_COLUMNS)
            .join_from(tokens, User.__table__, User.__table__.c.id == tokens.c.user_id)
            .where(tokens.c.token_hash == bindparam("digest")))


def _scope_for(session: Session, digest: str, council_key: str) -> dict[str, Any] | None:
    """The scope the cached caller of ``digest`` would act in (PostgreSQL), as :func:`_token_user_and_scope`'s
    values; None when nothing is cached, or the caller must name one of several councils."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    with _callers_lock:
        cached = _callers().get(digest)
    if cached is None or cached[0] <= time.monotonic():
        return None
    index = chosen_council([values["key"] for values, _ in cached[3]], council_key)
    if index is None:
        return None
    return {"scope_council": str(cached[3][index][0]["id"]), "scope_user": str(cached[1]),
            "scope_user_id": cached[1], "scope_version": cached[2]}


def chosen_council(keys: list[str], wanted: str) -> int | None:
    """Which of the caller's councils (their ``keys``) a request acts for: the one ``wanted`` names (the
    ``X-Council`` header), else the only one; None if ``wanted`` is none of them, or none is wanted of several."""
    if wanted:
        return keys.index(wanted) if wanted in keys else None
    return 0 if len(keys) == 1 else None


@functools.cache
def _token_user_and_scope() -> Select:
    """:func:`_token_and_user`, setting the transaction's scope (``tenancy.scope_columns``) when the token is
    unrevoked and unexpired and its user is the cached one at the cached session version."""
    tokens, users = ApiToken.__table__, User.__table__
    verified = ((tokens.c.revoked_at.is_(None)) & (tokens.c.expires_at > bindparam("scope_now"))
                & (users.c.id == bindparam("scope_user_id")) & (users.c.session_version == bindparam("scope_version")))
    return _token_and_user().add_columns(*tenancy.scope_columns(verified))


def forget_callers() -> None:
    """Forget every cached caller (a council's settings changed)."""
    with _callers_lock:
        _callers().clear()


def _column_values(row) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(type(row)).column_attrs}


def _attached(session: Session, model: type[_Row], values: dict[str, Any]) -> _Row:
    """The row of ``model`` as if just read in ``session`` (no statement), from a copy of ``values`` (its columns,
    which the cache keeps)."""
    return attached(session, model, {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                                     for k, v in values.items()})


def _check_token(session: Session, held: ApiToken | _Token) -> None:
    now = clock.now()
    if held.revoked_at is not None:
        raise TokenRefused(f"this token was revoked on {held.revoked_at:%d %B %Y}: ask for a new one")
    if held.expires_at <= now:
        raise TokenRefused(f"this token expired on {held.expires_at:%d %B %Y}: ask for a new one")
    if held.last_used_at is None or now - held.last_used_at > timedelta(minutes=1):
        # At most one write a minute per token: every API call must not become a write.
        session.execute(update(ApiToken).where(ApiToken.id == held.id).values(last_used_at=now)
                        .execution_options(synchronize_session=False))
        session.commit()


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    """The user's tokens, newest first (their hashes only: a token is never shown again)."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_token(session: Session, user: User, *, token_id: int | None = None, token: str | None = None) -> ApiToken:
    """Revoke one of the user's own tokens, by id or the token itself (404 for anyone else's)."""
    where = ApiToken.id == token_id if token_id is not None else ApiToken.token_hash == hash_token(token or "")
    held = session.scalars(select(ApiToken).where(where, ApiToken.user_id == user.id)).first()
    if held is None:
        raise NotFound("you have no such token")
    if held.revoked_at is None:
        held.revoked_at = clock.now()
    session.flush()
    return held


def display_names(session: Session, names: set[str | None]) -> dict[str, str]:
    """User name -> display name, in one query (names of the service itself read as words)."""
    wanted = {n for n in names if n}
    found = {"system": "the service", "timer": "a timer"}
    if wanted:
        for name, shown in session.execute(select(User.name, User.display_name).where(User.name.in_(wanted))):
            found[name] = shown or name
    return {n: found.get(n, n) for n in wanted}
