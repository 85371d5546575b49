"""A request's transaction that only read is committed on PostgreSQL, so its connection keeps the statements psycopg
prepared (a ROLLBACK makes psycopg forget them); one that wrote and was not committed is still rolled back."""
import pytest
from sqlalchemy import select, text, update

from service.models import User, db
from tests.conftest import Api, USERS, in_council, make_app, save_user


@pytest.fixture
def one_connection(postgres_url):
    """The service on PostgreSQL with one pooled connection, so every request and the test share it."""
    app = make_app(postgres_url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0})
    with app.app_context():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}", email=f"{name}@council.example")
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _email(app, name: str) -> str:
    with app.app_context():
        in_council(db.session)
        return db.session.scalars(select(User.email).where(User.name == name)).one()


def test_read_only_requests_keep_their_prepared_statements(one_connection):
    api = Api(one_connection, {name: f"token-{name}" for name in USERS})
    for _ in range(8):  # psycopg prepares a statement the sixth time a connection sends it
        assert api.get("/tasks", as_="worker").status_code == 200
    with one_connection.app_context():
        prepared = db.session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
    assert prepared > 0


def test_a_transaction_that_wrote_and_was_not_committed_is_rolled_back(one_connection):
    with one_connection.app_context():
        in_council(db.session)
        db.session.execute(update(User).where(User.name == "worker").values(email="changed@council.example"))
    assert _email(one_connection, "worker") == "worker@council.example"


def test_changes_not_yet_flushed_are_not_committed(one_connection):
    with one_connection.app_context():
        in_council(db.session)
        user = db.session.scalars(select(User).where(User.name == "worker")).one()
        user.email = "changed@council.example"
    assert _email(one_connection, "worker") == "worker@council.example"


def test_a_connection_reads_timestamps_in_utc(one_connection):
    """Each service connection sets its session's time zone to UTC (``config.engine_options``): psycopg then gives
    each timestamp in UTC as it is, where in the server's own zone it converts each one and the service converts it
    back. The instant read is the one written."""
    from datetime import datetime, timezone

    written = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)  # the night the clocks go forward in London
    with one_connection.app_context():
        assert db.session.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
        raw = db.session.execute(text("SELECT CAST(:at AS TIMESTAMPTZ)"), {"at": written}).scalar_one()
        assert raw == written and raw.tzinfo is timezone.utc
        db.session.rollback()
