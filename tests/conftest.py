"""Shared fixtures: the app on SQLite and on a throwaway PostgreSQL server, users, an API client, a clock."""
from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from html import unescape
from pathlib import Path

import deploy_snapshots
import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from flask_migrate import upgrade
from sqlalchemy import text

from service import auth, create_app, tenancy
from service.engine import clock
from service.models import Council, db

ROOT = Path(__file__).resolve().parent.parent
#: The run's data encryption key, as a deployment's environment gives one (every app and subprocess reads it).
os.environ.setdefault("DATA_ENCRYPTION_KEYS", Fernet.generate_key().decode())
FIXTURES = Path(__file__).resolve().parent / "fixtures"

TEST_COUNCIL = "test"
#: The unprivileged role the service connects to the test PostgreSQL as: row-level security applies to it
#: (a superuser would bypass it), so every PostgreSQL test also proves the service sets its council scope.
APP_ROLE = "step_app"

USERS = {
    "analyst": ["analyst"],
    "worker": ["social_worker"],
    "manager": ["team_manager"],
    "front": ["front_door"],
    "admin": ["admin"],
}


# -- PostgreSQL ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*command: str) -> list[str]:
    return list(command) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of our own for the whole run (initdb + pg_ctl), removed afterwards."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    base = Path(tempfile.mkdtemp(prefix="step-pathways-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
                                "-E", "UTF8"), check=True, capture_output=True)
    subprocess.run(_as_postgres("pg_ctl", "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                                f"-c max_connections=100", "start"), check=True, capture_output=True)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        yield url
    finally:
        subprocess.run(_as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# -- the app ---------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cases.db'}"
    return request.getfixturevalue("postgres_url")


def sqlite_only():
    """A test module's ``database_url`` on SQLite alone (``database_url = sqlite_only()`` in the module): for the
    long pathway scenarios, whose persistence on PostgreSQL Halton's step down and the API tests cover, and whose
    behaviour the sandbox's reference scenarios (bpmn/scenarios/) check again; keeps the suite within its time."""
    @pytest.fixture
    def database_url(tmp_path):
        return f"sqlite:///{tmp_path / 'cases.db'}"
    return database_url


def _settings(database_url: str, config) -> dict:
    # API tokens last ten years here: the pathway scenarios move the clock on by more than a year.
    return {"SQLALCHEMY_DATABASE_URI": database_url, "TIMERS_ENABLED": False, "TESTING": True,
            "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True, "API_TOKEN_DAYS": 3650, **config}


def make_app(database_url: str, **config):
    """A migrated database and the service on it (on PostgreSQL connected as an unprivileged role).

    Migrating is the slow part, so it happens once per run: SQLite copies a migrated template file; PostgreSQL
    empties the tables of an already migrated schema (and migrates again only when a test left it otherwise).
    """
    if database_url.startswith("sqlite:///"):
        shutil.copyfile(_sqlite_template(), database_url.removeprefix("sqlite:///"))
        return create_app(_settings(database_url, config))
    owner = _owner_app(database_url)
    with owner.app_context():
        _fresh_postgres(owner)
        _council(db.session, TEST_COUNCIL)
        db.session.commit()
        with db.engine.begin() as connection:
            if connection.execute(text(_UNGRANTED)).scalar():
                connection.execute(text(_GRANTS))
        db.session.remove()
    return create_app(_settings(database_url.replace("://postgres@", f"://{APP_ROLE}@"), config))


@functools.cache
def _owner_app(database_url: str):
    """The app connected as the schema's owner, which empties the tables between tests: one per run and server."""
    return create_app(_settings(database_url, {}))


@functools.cache
def _sqlite_template() -> str:
    """A SQLite file migrated to the newest schema, with the test council, made once per run (per test process)
    and removed when the process ends."""
    path = Path(tempfile.mkdtemp(prefix="step-pathways-template-")) / "template.db"
    atexit.register(shutil.rmtree, path.parent, True)
    app = create_app(_settings(f"sqlite:///{path}", {}))
    with app.app_context():
        upgrade()
        _council(db.session, TEST_COUNCIL)
        db.session.commit()
        with db.engine.begin() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))  # everything in the one file
        db.session.remove()
        db.engine.dispose()
    return str(path)


def _fresh_postgres(app) -> None:
    """Empty every table of a schema at the newest migration, or build the schema again if it is not."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config()).get_current_head()
    with db.engine.begin() as connection:
        current = connection.execute(text("SELECT to_regclass('public.alembic_version') IS NOT NULL")).scalar() and \
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if current == head:
            tables = [t.name for t in db.metadata.sorted_tables]
            extra = connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                            "AND tablename <> 'alembic_version'")).scalars().all()
            names = ", ".join(f'"{name}"' for name in sorted(set(tables) | set(extra)))
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade()


#: Whether the service's role is missing, or lacks its grants on a table or sequence (a rebuilt schema, or a
#: test that made tables again): granting takes a fifth of a second, checking a few milliseconds.
_UNGRANTED = f"""
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN true ELSE
  EXISTS (SELECT 1 FROM pg_tables, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS wanted
          WHERE schemaname = 'public'
            AND NOT has_table_privilege('{APP_ROLE}', format('%I.%I', schemaname, tablename), wanted))
  OR EXISTS (SELECT 1 FROM pg_sequences, unnest(ARRAY['USAGE', 'SELECT']) AS wanted
             WHERE schemaname = 'public'
               AND NOT has_sequence_privilege('{APP_ROLE}', format('%I.%I', schemaname, sequencename), wanted))
  OR NOT has_schema_privilege('{APP_ROLE}', 'public', 'USAGE') END
"""

_GRANTS = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN CREATE ROLE {APP_ROLE} LOGIN; END IF;
END $$;
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
"""


def _council(session, key: str, **settings) -> Council:
    """A test council, created if need be. Its analysts publish their uploads directly (requires_approval off),
    so that a test deploys and starts cases at once; tests of four eyes use a council that requires approval
    (tests/test_pathway_versions.py)."""
    council = tenancy.council_by_key(session, key)
    if council is None:
        from service.councils import create_council

        council, _ = create_council(session, key, f"{key.title()} Council",
                                    settings={"requires_approval": False, **settings})
    return council


def save_user(session, name: str, roles: list[str], *, council: str = TEST_COUNCIL, **kwargs):
    """A user with ``roles`` in ``council`` (the test council unless named), created if need be."""
    return auth.save_user(session, name, roles, council=_council(session, council), **kwargs)


@contextmanager
def everything():
    """Look at the database across councils, as a test checks what the service wrote (in an app context)."""
    with tenancy.all_councils(db.session):
        yield


def in_council(session, key: str = TEST_COUNCIL) -> Council:
    """Act for a council in a test's own app context (as a request or the timer sweep would)."""
    council = _council(session, key)
    tenancy.act_for(session, council)
    return council


@pytest.fixture
def app(database_url):
    app = make_app(database_url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def frozen_clock():
    """Time stands at Monday 21 December 2026, 09:00 London, until a test moves it."""
    fixed = clock.FixedClock(datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)


@pytest.fixture
def tokens(app):
    with app.app_context():
        for name, roles in USERS.items():
            user, _ = save_user(db.session, name, roles, token=f"token-{name}", email=f"{name}@council.example")
            # The hash as save_user would make it, made once per run: argon2 costs 0.2 s on purpose, and five
            # users for every test that signs in was a tenth of the suite's time.
            user.password_hash = password_hash(f"password-{name}")
        db.session.commit()
    return {name: f"token-{name}" for name in USERS}


class Api:
    """The Flask test client speaking to /api/v1 as a named user."""

    def __init__(self, app, tokens):
        self.app, self.client, self.tokens = app, app.test_client(), tokens

    def _call(self, method, path, as_="worker", **kwargs):
        headers = kwargs.pop("headers", {})
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.tokens[as_]}"
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self._call("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self._call("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self._call("PATCH", path, **kwargs)

    def as_role(self, role: str) -> str:
        """The name of a user who has exactly ``role`` (created on first use), for ``as_=``."""
        name = f"user-{role}"
        if name not in self.tokens:
            with self.app.app_context():
                save_user(db.session, name, [role], token=f"token-{name}")
                db.session.commit()
            self.tokens[name] = f"token-{name}"
        return name

    def deploy_pathways(self):
        """Deploy the repository's bpmn/, dmn/ and forms/ (the reference pathways) with their scenario tests
        (bpmn/scenarios/), which run at the deploy and must pass. One deployment per council's files (named
        with its key), as `make run` deploys them: all of them would be over a deployment's 200 files."""
        paths = [p for folder in ("bpmn", "dmn", "forms", "bpmn/scenarios")
                 for p in sorted((ROOT / folder).glob("*")) if p.is_file()]
        by_council: dict[str, list[Path]] = {}
        for path in paths:
            by_council.setdefault(path.name.split("_", 1)[0], []).append(path)
        for council_paths in by_council.values():
            response = self.deploy(council_paths, replay=True)
            assert response.status_code == 201, response.json
        return response.json

    def deploy(self, folder: Path | list[Path], as_="analyst", replay: bool = False):
        """POST the files to /deployments. With ``replay``, for a scenario's set-up rather than a test of
        deploying: on a database in a state seen before, the rows that deploy wrote are written back instead
        (tests/deploy_snapshots.py)."""
        paths = sorted(folder.iterdir()) if isinstance(folder, Path) else folder
        if replay:
            return deploy_snapshots.deploy_once(self.app, paths, as_, APP_ROLE, lambda: self.deploy(paths, as_))
        files = [(p.open("rb"), p.name) for p in paths if p.is_file()]
        try:
            return self.post("/deployments", data={"files": files}, as_=as_, content_type="multipart/form-data")
        finally:
            for handle, _ in files:
                handle.close()


@pytest.fixture
def api(app, tokens):
    return Api(app, tokens)


@pytest.fixture
def sqlite_app(tmp_path):
    """The app on SQLite only: for pathway scenarios, whose persistence is covered on both databases elsewhere."""
    app = make_app(f"sqlite:///{tmp_path / 'cases.db'}")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def pathways(sqlite_app):
    """An API client on SQLite with the reference pathways deployed and the test users created."""
    return pathways_client(sqlite_app)


def pathways_client(app) -> Api:
    """An API client on ``app``'s database with the reference pathways deployed and the test users created."""
    tokens = {}
    with app.app_context():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    client = Api(app, tokens)
    client.deploy_pathways()
    return client


# -- the pages ---------------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


#: Argon2 with the least work it allows. The service's own hasher takes 0.2 s to make or check a hash, on
#: purpose; a fixture's stored password is checked with the parameters written in its hash, so sign-ins in tests
#: take milliseconds while they go through the service's own verification. Hashes the service makes (a password
#: set through it) keep the service's parameters.
_LIGHT_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@functools.cache
def password_hash(password: str) -> str:
    """An argon2 hash of ``password`` for a fixture's user, made once per password per run."""
    return _LIGHT_HASHER.hash(password)


class Browser:
    """A test client that signs in through the form and sends the CSRF token like a browser."""

    def __init__(self, app, base_url: str = "http://localhost"):
        self.client = app.test_client()
        self.base_url = base_url
        self.token = None

    def get(self, path, **kwargs):
        response = self.client.get(path, base_url=self.base_url, **kwargs)
        found = CSRF.search(response.get_data(as_text=True))
        if found:
            self.token = found[1]
        return response

    def post(self, path, data=None, csrf=True, **kwargs):
        data = dict(data or {}) if not hasattr(data, "getlist") else data
        if csrf:
            if self.token is None:
                self.get("/sign-in")
            data["csrf_token"] = self.token
        return self.client.post(path, data=data, base_url=self.base_url, **kwargs)

    def sign_in(self, name, password=None):
        self.get("/sign-in")
        response = self.post("/sign-in", {"name": name, "password": password or f"pw-{name}"})
        assert response.status_code == 302, response.get_data(as_text=True)
        self.get("/")  # signing in starts a new session, with a new CSRF token
        return response


def page_text(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, white space collapsed."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
