"""The database: deployments, cases with their open tasks and pending timers, the audit log, users.

A case row holds the engine state without the spec (specs are parsed once per
deployment and cached). Open tasks and pending timers are rows of their own,
kept in step with the state on every save, so an inbox or a timer sweep is an
indexed query that never deserializes a workflow.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, event,
                        inspect)
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, declared_attr, make_transient_to_detached, mapped_column,
                            registry, relationship)
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import TypeDecorator

from service.encryption import EncryptedBytes, EncryptedJSON, EncryptedText
from service.engine import clock


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return clock.as_utc(value) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else clock.as_utc(value)


class Base(DeclarativeBase):
    registry = registry(type_annotation_map={datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON})


# Objects stay readable after commit: a response is built from what the request just saved.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def loaded_columns(model: type, *undeferred: str) -> list[str]:
    """The attributes of each column the ORM loads of ``model`` when it reads a row (its deferred ones only if
    named in ``undeferred``): what a plain statement reads to make rows with :func:`as_read`."""
    return [attr.key for attr in inspect(model).column_attrs if not attr.deferred or attr.key in undeferred]


def as_read(model: type, values: dict[str, Any]) -> Any:
    """A row of ``model`` holding ``values`` (its columns) as the ORM fills in a row it reads (not through the
    constructor, whose attribute events cost as much as the read); :func:`attach_read` makes it persistent."""
    row = inspect(model).class_manager.new_instance()
    row.__dict__.update(values)
    return row


def attached(session: Session, model: type, values: dict[str, Any]) -> Any:
    """The row of ``model`` whose ``id`` is ``values["id"]``, as a query would give it in ``session``: the one
    the session holds already, else one holding ``values`` (its columns), made persistent there."""
    held = session.identity_map.get(identity_key(model, values["id"]))
    if held is not None:
        return held
    row = as_read(model, values)
    attach_read(session, [row])
    return row


def attach_read(session: Session, rows: list[Any]) -> None:
    """Make ``rows`` (from :func:`as_read`, related to each other with ``set_committed_value``) persistent and
    unchanged in ``session``, as if it had just read them: an attribute not given loads when first used."""
    for row in rows:
        make_transient_to_detached(row)
    session.add_all(rows)


class Council(db.Model):
    """A council (a children's services authority): its pathways, people and cases are its own alone.

    The settings are the council's: its working-day calendar (the bank holidays of its ``country`` plus its
    ``closure_days``), its office hours (out of hours, urgent work goes to the emergency duty team), the
    sender of its emails, how long a closed case is kept, and the name and colour in its page header.
    """

    __tablename__ = "councils"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)  # readable, used in URLs and X-Council
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(20), default="england")  # england | wales | scotland | ...
    closure_days: Mapped[list[Any]] = mapped_column(default=list)  # ISO dates
    office_opens: Mapped[str] = mapped_column(String(5), default="09:00")
    office_closes: Mapped[str] = mapped_column(String(5), default="17:00")
    email_sender: Mapped[str | None] = mapped_column(String(254))
    retention_days: Mapped[int | None]  # after closure; None: the service's default
    # Per pathway (process key): days after closure, overriding retention_days (service.retention).
    retention_by_pathway: Mapped[dict[str, Any] | None]
    brand_colour: Mapped[str | None] = mapped_column(String(7))  # '#1d70b8'
    requires_approval: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class CouncilOwned:
    """A row that belongs to one council: every ORM query of it is scoped to the acting council
    (``service.tenancy``), and on PostgreSQL row-level security keyed by council is a second wall."""

    @declared_attr
    def council_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("councils.id"), index=True)


class User(db.Model):
    """A person. People are the service's, not a council's: one person may work for several councils
    (a regional emergency duty team); what they may do in each is their :class:`Membership` there."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Raised by signing out, a new password or new roles: every session signed before it has ended.
    session_version: Mapped[int] = mapped_column(default=1)
    is_operator: Mapped[bool] = mapped_column(default=False)  # runs the service; reads no case data
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class ApiToken(db.Model):
    """A bearer token for the API: one of several a person may hold, each expiring and revocable.

    Only the token's SHA-256 is kept (tokens are long and random, so a fast hash is enough); the token
    itself is shown once, when it is issued.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class SignInLock(db.Model):
    """Failed sign-ins for one user name from one address, counted atomically; five lock the pair.

    Keyed by the name typed, not by a user, so that an unknown name locks exactly as a real one does (the
    answer never tells whether an account exists), and by address, so that nobody elsewhere can lock a
    person out on purpose.
    """

    __tablename__ = "sign_in_locks"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    attempts: Mapped[int] = mapped_column(default=0)  # failed, or being checked now
    last_attempt_at: Mapped[datetime]


class SignInAttempt(db.Model):
    """One attempt to sign in not (yet) known to be right: the sliding window of the rate limits,
    shared by every process of the service because it is in the database."""

    __tablename__ = "sign_in_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (Index("ix_sign_in_attempts_name_at", "name", "at"),
                      Index("ix_sign_in_attempts_address_at", "address", "at"),
                      Index("ix_sign_in_attempts_at", "at"))  # attempts older than the window are pruned


class Membership(db.Model):
    """A role a user holds in one council (``social_worker`` of Halton is not Rochdale's)."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(80), primary_key=True)

    __table_args__ = (Index("ix_memberships_council_role", "council_id", "role"),)


class Deployment(CouncilOwned, db.Model):
    """An upload: a snapshot of every pathway file of the council. Its ``status`` is the approval of the
    versions it made (``service.pathway_versions``): draft -> submitted -> published, or rejected."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str | None] = mapped_column(String(80))  # a label kept as it was (the name then)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="published")  # draft | submitted | published | rejected
    name: Mapped[str | None] = mapped_column(String(255))  # what the analyst called it (Modeler's deployment-name)
    source: Mapped[str | None] = mapped_column(String(80))  # api | camunda-modeler | cli | copy
    submitted_by: Mapped[str | None] = mapped_column(String(80))
    submitted_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(80))  # who published or rejected it
    decided_at: Mapped[datetime | None]
    # Files are read only to parse a deployment (once per process, then cached): never eagerly.
    files: Mapped[list[DeploymentFile]] = relationship(cascade="all, delete-orphan", lazy="select",
                                                       order_by="DeploymentFile.name")
    processes: Mapped[list[ProcessVersion]] = relationship(back_populates="deployment", lazy="select")

    # Not unique: going back to an earlier set of files (a file removed, then put back) is a new deployment.
    __table_args__ = (Index("ix_deployments_council_content_hash", "council_id", "content_hash"),)


class PathwayFile(CouncilOwned, db.Model):
    """A pathway file's content, stored once per council however many deployments include it."""

    __tablename__ = "pathway_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    __table_args__ = (UniqueConstraint("council_id", "sha256", name="uq_pathway_files_council_sha256"),)


class DeploymentFile(CouncilOwned, db.Model):
    """A file of a deployment: its name there, and its content (shared by every deployment holding it)."""

    __tablename__ = "deployment_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    file_id: Mapped[int] = mapped_column(ForeignKey("pathway_files.id"), index=True)
    file: Mapped[PathwayFile] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("deployment_id", "name"),)

    @property
    def content(self) -> bytes:
        return self.file.content


class ProcessVersion(CouncilOwned, db.Model):
    """One version of a pathway: its key, its number and the deployment whose files define it."""

    __tablename__ = "process_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120))
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # draft | submitted | published | suspended | retired | rejected: new cases start from the newest version
    # that was ever published, and only while it is published (``service.pathway_versions``).
    status: Mapped[str] = mapped_column(String(20), default="published")
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(80))
    deployment: Mapped[Deployment] = relationship(back_populates="processes", lazy="select")

    __table_args__ = (UniqueConstraint("council_id", "key", "version", name="uq_process_versions_council_id"),)


class PathwayEvent(CouncilOwned, db.Model):
    """Append-only: each change of a deployment's or a pathway version's status, with who and why."""

    __tablename__ = "pathway_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=clock.now)
    actor: Mapped[str] = mapped_column(String(80))
    event: Mapped[str] = mapped_column(String(40))  # deployed | submitted | published | rejected | suspended ...
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"), index=True)
    process_version_id: Mapped[int | None] = mapped_column(ForeignKey("process_versions.id"), index=True)
    key: Mapped[str | None] = mapped_column(String(120))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(2000))


class ScenarioRun(CouncilOwned, db.Model):
    """One run of one scenario test of a pathway version (``service.scenario_runs``): passed or not, and the
    result of each step. Runs on deploy, on publish and on demand; the newest run of each scenario is shown."""

    __tablename__ = "scenario_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)
    scenario: Mapped[str] = mapped_column(String(255))  # the file name
    title: Mapped[str] = mapped_column(String(255))
    passed: Mapped[bool]
    steps: Mapped[list[Any]] = mapped_column(JSON)  # service.scenarios.StepResult of each step, as JSON
    milliseconds: Mapped[int] = mapped_column(default=0)  # how long the run took
    trigger: Mapped[str] = mapped_column(String(20))  # deploy | publish | on_demand
    ran_by: Mapped[str | None] = mapped_column(String(80))
    ran_at: Mapped[datetime] = mapped_column(default=clock.now)


class Case(CouncilOwned, db.Model):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)
    reference: Mapped[str] = mapped_column(String(120), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # active | completed | cancelled | error
    outcome: Mapped[str | None] = mapped_column(String(80), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)  # never filtered on in SQL
    # Read only to run the case, never to list it.
    state: Mapped[str] = mapped_column(EncryptedText, deferred=True)
    state_format: Mapped[str] = mapped_column(String(20))
    error: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)  # an engine message may quote data
    # Who started it, by id: a later user given the same name is someone else (issue 11).
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    started_from_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    family_id: Mapped[int | None] = mapped_column(ForeignKey("families.id"), index=True)  # service.families
    child_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    # Not indexed (no query reads it): a reminder's write to the case then changes no indexed column (HOT).
    next_timer_at: Mapped[datetime | None] = mapped_column()
    waiting_for: Mapped[list[Any]] = mapped_column(default=list)  # message names some step waits for
    waiting_signals: Mapped[list[Any]] = mapped_column(default=list)  # signal names some step waits for
    timer_failures: Mapped[int] = mapped_column(default=0)  # failed sweeps in a row; three quarantine the case
    #: The reminders the timer sweep fired since the state was written (one-off ones, and cycles' last firings:
    #: ``service.reminders``), timer id -> element, when, last cycle; the engine's next load marks them fired in
    #: the state (``reminders.state_of``), and its next write of the state empties this. Not in the encrypted
    #: state, so that firing a reminder neither reads nor rewrites the state. Element and timer ids only.
    fired_ahead: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    process: Mapped[ProcessVersion] = relationship(lazy="joined")
    tasks: Mapped[list[OpenTask]] = relationship(
        lazy="select", order_by="OpenTask.created_at",
        primaryjoin="and_(Case.id == OpenTask.case_id, OpenTask.closed_at.is_(None))", viewonly=True)
    timers: Mapped[list[PendingTimer]] = relationship(cascade="all, delete-orphan", lazy="select",
                                                      order_by="PendingTimer.due_at")
    child: Mapped[Person | None] = relationship(lazy="select", foreign_keys=[child_id])
    starter: Mapped[User | None] = relationship(lazy="select", foreign_keys=[started_by_id], viewonly=True)

    __mapper_args__ = {"version_id_col": lock_version}

    @property
    def started_by(self) -> str | None:
        """The starter's name, for people to read (access is decided by ``started_by_id``)."""
        return self.starter.name if self.started_by_id is not None and self.starter is not None else None


class Family(CouncilOwned, db.Model):
    """A family the council works with: its children (:class:`Person`) and every case of theirs (``service.families``)."""

    __tablename__ = "families"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(EncryptedText)  # "the Price family": personal data, encrypted
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str | None] = mapped_column(String(80))
    people: Mapped[list[Person]] = relationship(back_populates="family", lazy="select", order_by="Person.id")


class Person(CouncilOwned, db.Model):
    """A child: names, date of birth and numbers are encrypted like case data, so they are found through
    :class:`SearchToken` (a keyed blind index), never by SQL on these columns."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id"), index=True)
    given_name: Mapped[str] = mapped_column(EncryptedText)
    family_name: Mapped[str] = mapped_column(EncryptedText)
    date_of_birth: Mapped[str | None] = mapped_column(EncryptedText)  # ISO date
    council_number: Mapped[str | None] = mapped_column(EncryptedText)  # the council's own person number
    nhs_number: Mapped[str | None] = mapped_column(EncryptedText)  # ten digits, check digit verified
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str | None] = mapped_column(String(80))
    family: Mapped[Family] = relationship(back_populates="people", lazy="joined")
    tokens: Mapped[list[SearchToken]] = relationship(cascade="all, delete-orphan", lazy="select")


class SearchToken(CouncilOwned, db.Model):
    """One entry of the blind index of a person: an HMAC (keyed per council, ``service.families``) of a
    normalised name trigram, prefix, whole name or date of birth. Equal digests mean equal values; the
    values themselves are not here."""

    __tablename__ = "search_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # tri | pre | given | family | name | dob | nhs | number
    digest: Mapped[str] = mapped_column(String(32))

    __table_args__ = (Index("ix_search_tokens_council_kind_digest", "council_id", "kind", "digest"),)


class ReferenceSuffix(CouncilOwned, db.Model):
    """One suffix of a case's lower-cased reference, as UTF-8 bytes: a reference holds ``text`` exactly when
    one of its suffixes starts with it, a range of this index (``service.cases``). Bytes compare by
    ``bytea``'s operators, which PostgreSQL marks leakproof, so the index serves the search under row-level
    security (``LIKE`` and ``lower()`` are not leakproof: a search by them reads the whole cases table).
    Written with the case (:func:`reference_suffixes`, the mapper events below)."""

    __tablename__ = "reference_suffixes"

    # No index of its own: the council leads ix_reference_suffixes_council_suffix (one alone would tempt the
    # planner, on a small table, to read the council's every suffix and filter them).
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    suffix: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)

    __table_args__ = (Index("ix_reference_suffixes_council_suffix", "council_id", "suffix", "case_id"),)


class CaseWait(CouncilOwned, db.Model):
    """A message or signal a case's steps wait for: one row per name in the case's ``waiting_for`` (``kind``
    ``message``) and ``waiting_signals`` (``signal``), with the case's version, kept equal to them by the database
    itself (triggers on ``cases``, migration ``d4f7b2e9a6c1``), however a case is written. A message or signal for
    whoever waits for it (``service.cases``) finds its cases by this index, and a keyed message the versions that
    wait for it; text and integer equality are leakproof, so it serves under row-level security, where a ``LIKE``
    on the JSON lists read every case of the council."""

    __tablename__ = "case_waits"

    # No index of its own: the council leads ix_case_waits_council_kind_name.
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    process_version_id: Mapped[int]  # the case's (a case moved to another version moves its rows)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # message | signal
    name: Mapped[str] = mapped_column(Text, primary_key=True)

    __table_args__ = (Index("ix_case_waits_council_kind_name", "council_id", "kind", "name", "process_version_id",
                            "case_id"),)


class SignalBroadcast(CouncilOwned, db.Model):
    """A signal still on its way to the cases that waited for it when it was sent (``service.broadcasts``): the
    sender's request reached the first of them, and the timer service reaches the rest a batch at a time, each
    batch committed with how far it has got (``after_case_id``). Its payload is emptied once it is done."""

    __tablename__ = "signal_broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    sent_by: Mapped[str] = mapped_column(String(80))  # who sent it, as the cases' audit names them
    sent_by_id: Mapped[int | None]
    thrower_case_id: Mapped[int | None]  # the case that threw it, which does not catch its own signal
    sent_at: Mapped[datetime]
    #: The cases there were when it was sent: a case started later does not catch it.
    up_to_case_id: Mapped[int]
    #: The last case it has been delivered past (in order of id).
    after_case_id: Mapped[int]
    reached: Mapped[int] = mapped_column(default=0)
    #: When its next batch is due: at once, or a while after a batch the database failed.
    due_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_signal_broadcasts_on_the_way", "finished_at", "due_at"),)


def reference_key(text: str) -> bytes:
    """``text`` as a reference search compares it: lower-cased, UTF-8."""
    return text.strip().lower().encode("utf-8")


def reference_suffixes(reference: str) -> list[bytes]:
    """Every suffix of the reference's key (distinct: they differ in length)."""
    key = reference.lower()
    return [key[start:].encode("utf-8") for start in range(len(key))]


def write_suffixes(connection, case, *, replace: bool) -> None:
    """Write the case's reference suffixes (after its insert, or in place of the old ones)."""
    table = ReferenceSuffix.__table__
    if replace:
        connection.execute(table.delete().where(table.c.case_id == case.id))
    rows = [{"case_id": case.id, "council_id": case.council_id, "suffix": suffix}
            for suffix in reference_suffixes(case.reference or "")]
    if rows:
        connection.execute(table.insert(), rows)


class OpenTask(CouncilOwned, db.Model):
    """A user task for a person: the inbox reads the rows not yet closed, and nothing else."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the engine's task id
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    # Who holds it and who closed it, by id (names are shown, never compared: issue 11).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    draft: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    role_rows: Mapped[list[TaskRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    case: Mapped[Case] = relationship(lazy="select")
    assignee_user: Mapped[User | None] = relationship(lazy="select", foreign_keys=[assignee_id], viewonly=True)

    @property
    def roles(self) -> list[str]:
        return sorted(r.role for r in self.role_rows)

    @property
    def assignee(self) -> str | None:
        """The assignee's name, for people to read (access is decided by ``assignee_id``)."""
        return self.assignee_user.name if self.assignee_id is not None and self.assignee_user is not None else None

    @property
    def assignee_label(self) -> str | None:
        """The assignee as pages show them (display name, else name), as a listed task's."""
        user = self.assignee_user if self.assignee_id is not None else None
        return (user.display_name or user.name) if user is not None else None


class TaskRole(CouncilOwned, db.Model):
    __tablename__ = "task_roles"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)


class PendingTimer(CouncilOwned, db.Model):
    """A timer waiting in a case: the timer sweep reads these rows only."""

    __tablename__ = "pending_timers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    due_at: Mapped[datetime] = mapped_column(index=True)
    attached_task_id: Mapped[str | None] = mapped_column(String(36))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: A reminder's cycle as the sweep last fired it without the engine (``service.reminders``); None: the
    #: case's state holds it.
    cycle: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AuditEvent(CouncilOwned, db.Model):
    """Append-only and tamper-evident: who did what, when (``service.audit``).

    Each event is the next link of its council's chain: ``seq`` numbers it, ``detail_hash`` is the hash of
    its detail, ``hash`` the hash of its own fields, ``detail_hash`` and ``prev_hash`` (the previous
    event's ``hash``). Erasing a case empties the details of its events and keeps every hash, so the chain
    still verifies. A case with audit events cannot be deleted (``RESTRICT``): it is erased instead.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    actor: Mapped[str] = mapped_column(String(80))
    event: Mapped[str] = mapped_column(String(40))
    task: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    seq: Mapped[int | None]
    detail_hash: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_events_case_at", "case_id", "at", "id"),
                      UniqueConstraint("council_id", "seq", name="uq_audit_events_council_id_seq"))


class AuditChain(db.Model):
    """The head of a council's audit chain: its last ``seq`` and ``hash``. Appending updates this row first,
    which locks it until the commit, so two processes appending at once queue instead of forking the chain."""

    __tablename__ = "audit_chains"

    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="")


class AccessEvent(CouncilOwned, db.Model):
    """Append-only: who opened which case or task, when, and through what (``service.access_log``)."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(80), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(40))  # case | case_history | case_page | diagram | task | task_page


class Notification(CouncilOwned, db.Model):
    """A reminder or escalation for one user: shown in the service and sent by email (the outbox)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    task: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))  # reminder | escalation | error
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    read_at: Mapped[datetime | None]
    email_sent_at: Mapped[datetime | None]
    email_attempts: Mapped[int] = mapped_column(default=0)
    email_next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    email_error: Mapped[str | None] = mapped_column(EncryptedText)  # an SMTP answer may quote the address


class CaseNote(CouncilOwned, db.Model):
    """A worker's note on a case (a contact, a visit, a phone call, a meeting): when it happened, who was
    involved, what was said. Part of the case record and the family's chronology (``service.case_records``)."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # contact | visit | phone_call | meeting | other
    happened_on: Mapped[date]
    who: Mapped[str] = mapped_column(EncryptedText)  # who was there or spoken to: personal data
    text: Mapped[str] = mapped_column(EncryptedText)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class CaseDocument(CouncilOwned, db.Model):
    """A document uploaded to a case: its content encrypted at rest, its type checked by content on upload
    (``service.case_records``). Listing a case's documents never reads their content (deferred)."""

    __tablename__ = "case_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(EncryptedText)
    filename: Mapped[str] = mapped_column(EncryptedText)  # a child's name is often in it
    media_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    checklist_item: Mapped[str | None] = mapped_column(String(80))  # the checklist answer it ticked, if any
    content: Mapped[bytes] = mapped_column(EncryptedBytes, deferred=True)
    uploaded_by: Mapped[str] = mapped_column(String(80))
    uploaded_at: Mapped[datetime] = mapped_column(default=clock.now)


class Rehearsal(CouncilOwned, db.Model):
    """An analyst's rehearsal of a pathway version: a sandbox case (``service.sandbox``) run by the engine alone
    on its own clock, kept here as the sandbox's JSON, encrypted (the answers an analyst types may be realistic).
    Never a row of ``cases``, ``tasks``, ``pending_timers`` or ``notifications`` (``service.rehearsals``)."""

    __tablename__ = "rehearsals"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(EncryptedText, deferred=True)  # Sandbox.to_json(): read only to act or show it
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)  # two tabs acting at once: the second is refused
    process: Mapped[ProcessVersion] = relationship(lazy="joined")
    creator: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[created_by_id], viewonly=True)

    __mapper_args__ = {"version_id_col": lock_version}


@event.listens_for(Case, "after_insert")
def _case_inserted(mapper, connection, case) -> None:
    write_suffixes(connection, case, replace=False)  # a new case has none yet


@event.listens_for(Case, "after_update")
def _case_updated(mapper, connection, case) -> None:
    if inspect(case).attrs.reference.history.has_changes():
        write_suffixes(connection, case, replace=True)


@event.listens_for(Case, "before_delete")
def _case_deleted(mapper, connection, case) -> None:
    table = ReferenceSuffix.__table__
    connection.execute(table.delete().where(table.c.case_id == case.id))
