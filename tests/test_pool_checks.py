"""A pooled PostgreSQL connection is checked before use only when it has sat idle (``service.pool_checks``): one the
server dropped meanwhile is replaced before a request uses it, and a connection handed back a moment ago costs
no round trip."""
import pytest
from sqlalchemy import create_engine, text

from service import pool_checks
from service.models import db
from tests.conftest import Api, USERS, make_app, save_user


@pytest.fixture
def one_connection(postgres_url):
    """The service on PostgreSQL with one pooled connection, which every request shares."""
    app = make_app(postgres_url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0})
    with app.app_context():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}")
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def pings(one_connection, monkeypatch):
    """How many times the app's connections have been checked (``dialect.do_ping``, which ``pool_pre_ping`` calls
    too)."""
    with one_connection.app_context():
        dialect = db.engine.dialect
    sent = []
    ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda connection: sent.append(1) or ping(connection))
    return sent


def _backend(app) -> int:
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.remove()
    return pid


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_a_request_uses_it(
        one_connection, postgres_url, pings, monkeypatch):
    api = Api(one_connection, {name: f"token-{name}" for name in USERS})
    assert api.get("/tasks").status_code == 200
    dropped = _backend(one_connection)
    owner = create_engine(postgres_url)
    with owner.connect() as connection:  # as a restart or a fail-over would
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped}).scalar_one()
    owner.dispose()
    monkeypatch.setattr(pool_checks, "IDLE_BEFORE_CHECK", 0.0)  # the connection has sat idle long enough

    response = api.get("/tasks")

    assert response.status_code == 200, response.json
    assert pings and _backend(one_connection) != dropped


def test_a_connection_handed_back_a_moment_ago_is_used_without_a_check(one_connection, pings, monkeypatch):
    api = Api(one_connection, {name: f"token-{name}" for name in USERS})
    monkeypatch.setattr(pool_checks, "IDLE_BEFORE_CHECK", 3600.0)
    for _ in range(3):
        assert api.get("/tasks").status_code == 200
    assert pings == []

    monkeypatch.setattr(pool_checks, "IDLE_BEFORE_CHECK", 0.0)
    assert api.get("/tasks").status_code == 200
    assert pings == [1]


def test_a_request_on_a_connection_dropped_a_moment_ago_is_answered_send_again_and_the_next_is_served(
        one_connection, postgres_url, monkeypatch):
    """Within the half second a connection goes unchecked, a request may meet one the server has just dropped: it
    changed nothing, so it is a 503 to send again (not a 500), and the pool has replaced its connections for the
    next."""
    api = Api(one_connection, {name: f"token-{name}" for name in USERS})
    assert api.get("/tasks").status_code == 200
    dropped = _backend(one_connection)
    owner = create_engine(postgres_url)
    with owner.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped}).scalar_one()
    owner.dispose()
    monkeypatch.setattr(pool_checks, "IDLE_BEFORE_CHECK", 3600.0)  # as if handed back a moment ago: not checked

    refused = api.get("/tasks")

    assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
    assert "send the request again" in refused.json["message"]
    assert api.get("/tasks").status_code == 200 and _backend(one_connection) != dropped
