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


def test_a_connection_compiles_no_statement_just_in_time(one_connection):
    """PostgreSQL's JIT compiles a statement its planner thinks costly, taking 100 ms and more (the workload's
    old grouped statement at 1,000,000 open tasks); the service's statements read a page or a capped count, so
    its connections turn it off, whatever the server's setting."""
    with one_connection.app_context():
        assert db.session.execute(text("SHOW jit")).scalar_one() == "off"
        db.session.rollback()


def test_a_results_description_is_psycopgs_made_when_read(one_connection):
    """``cursor.description`` (``service.pg_cursor``) holds the columns psycopg describes, as the result was when
    it was asked for, even once the cursor has run another statement; a statement without rows has none."""
    import psycopg

    with one_connection.app_context():
        cursor = db.session.connection().connection.driver_connection.cursor()
        query = "SELECT 1 AS n, 'a'::varchar(7) AS word, now() AS at, '{}'::jsonb AS doc, NULL::numeric(5, 2) AS x"
        cursor.execute(query)
        described = cursor.description
        plain = psycopg.Cursor(cursor.connection)
        plain.execute(query)
        expected = plain.description
        cursor.execute("SELECT 2 AS other")
        assert [tuple(column) for column in described] == [tuple(column) for column in expected]
        assert [c.type_display for c in described] == [c.type_display for c in expected]
        assert [c.name for c in described] == ["n", "word", "at", "doc", "x"]
        assert [c.name for c in cursor.description] == ["other"]
        cursor.execute("SET LOCAL lock_timeout = '1s'")
        assert cursor.description is None
        db.session.rollback()


def test_a_statement_run_again_builds_no_column_description(one_connection, monkeypatch):
    """SQLAlchemy reads no more of a cached statement's description than whether there is one; psycopg built a
    ``Column`` for each column of every result (psycopg/psycopg#446): 57 for each completion's read."""
    import psycopg

    built = []
    made = psycopg.Column.__init__
    monkeypatch.setattr(psycopg.Column, "__init__", lambda self, *a: built.append(1) or made(self, *a))
    statement = select(User.id, User.name, User.email, User.display_name).where(User.name == "worker")
    with one_connection.app_context():
        in_council(db.session)
        assert db.session.execute(statement).one().name == "worker"  # compiled, its result columns cached
        built.clear()
        for _ in range(3):
            assert db.session.execute(statement).one().name == "worker"
        db.session.rollback()
    assert built == []
