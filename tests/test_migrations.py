"""Upgrading a database from before councils: every row moves into its council, nothing is lost.

A database of the first schema holds one deployment with Halton's and Rochdale's files (and a form of
neither), a case of each, their tasks, timers, audit and a notification, and two users. After `flask db
upgrade` each row belongs to the council its pathway's key names, the deployment is split so that each
council keeps only its own files (and the shared one), and a user's roles are held where they acted.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from service import create_app
from service.models import db

BEFORE_COUNCILS = "3c7e1901bb86"
T = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def legacy(database_url):
    """The app on a database at the schema before councils, holding two councils' worth of rows."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TIMERS_ENABLED": False, "TESTING": True,
                      "SECRET_KEY": "test"})
    with app.app_context():
        if database_url.startswith("postgresql"):
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(revision=BEFORE_COUNCILS)
        with db.engine.begin() as connection:
            for statement, rows in _LEGACY_ROWS:
                for row in rows:
                    connection.execute(text(statement), {"t": T, **row})
            if connection.dialect.name == "postgresql":  # the rows above gave their ids: move the sequences on
                for table in ("users", "deployments", "process_versions", "cases"):
                    connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                            f"(SELECT max(id) FROM {table}))"))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


_CASE = ("INSERT INTO cases (id, process_version_id, reference, status, data, state, state_format, started_by, "
         "created_at, updated_at, waiting_for, lock_version) VALUES (:id, :pv, :ref, 'active', '{}', '', '1', :by, "
         ":t, :t, '[]', 1)")
_LEGACY_ROWS = [
    ("INSERT INTO users (id, name, failed_sign_ins, created_at) VALUES (:id, :name, 0, :t)",
     [{"id": 1, "name": "sam"}, {"id": 2, "name": "idle"}]),
    ("INSERT INTO user_roles (user_id, role) VALUES (:u, :r)", [{"u": 1, "r": "social_worker"},
                                                                {"u": 2, "r": "team_manager"}]),
    ("INSERT INTO deployments (id, content_hash, created_at, created_by) VALUES (1, 'h1', :t, 'cli')", [{}]),
    ("INSERT INTO deployment_files (deployment_id, name, content) VALUES (1, :n, :c)",
     [{"n": "halton_step_up.bpmn", "c": b"<halton/>"}, {"n": "rochdale_step_up.bpmn", "c": b"<rochdale/>"},
      {"n": "shared.form", "c": b"{}"}]),
    ("INSERT INTO process_versions (id, key, version, name, content_hash, deployment_id, created_at) "
     "VALUES (:id, :key, 1, :key, :key, 1, :t)", [{"id": 1, "key": "halton_step_up"}, {"id": 2, "key": "rochdale_step_up"}]),
    (_CASE, [{"id": 1, "pv": 1, "ref": "HAL-1", "by": "sam"}, {"id": 2, "pv": 2, "ref": "ROC-1", "by": None}]),
    ("INSERT INTO tasks (id, case_id, name, title, created_at, closed_at, closed_by) VALUES (:id, :case, 'T', 'T', "
     ":t, NULL, NULL)", [{"id": "task-1", "case": 1}, {"id": "task-2", "case": 2}]),
    ("INSERT INTO task_roles (task_id, role) VALUES (:id, 'social_worker')", [{"id": "task-1"}, {"id": "task-2"}]),
    ("INSERT INTO pending_timers (id, case_id, name, title, due_at, properties) VALUES ('timer-2', 2, 'E', 'E', :t, "
     "'{}')", [{}]),
    ("INSERT INTO audit_events (case_id, at, actor, event, detail) VALUES (:case, :t, 'sam', 'case_started', '{}')",
     [{"case": 1}, {"case": 2}]),
    ("INSERT INTO notifications (user_id, case_id, kind, subject, body, created_at, email_attempts) "
     "VALUES (1, 2, 'reminder', 's', 'b', :t, 0)", [{}]),
]


def _rows(app, query: str) -> list[tuple]:
    with app.app_context(), db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # the upgrade turned row-level security on
            connection.execute(text("SELECT set_config('app.all_councils', 'on', true)"))
        return [tuple(row) for row in connection.execute(text(query))]


def test_rows_move_into_the_council_their_pathway_names(legacy):
    with legacy.app_context():
        upgrade()
    councils = dict(_rows(legacy, "SELECT key, id FROM councils"))
    assert set(councils) == {"halton", "rochdale"}
    halton, rochdale = councils["halton"], councils["rochdale"]
    assert _rows(legacy, "SELECT id, council_id FROM cases ORDER BY id") == [(1, halton), (2, rochdale)]
    assert _rows(legacy, "SELECT id, council_id FROM tasks ORDER BY id") == [("task-1", halton), ("task-2", rochdale)]
    assert _rows(legacy, "SELECT task_id, council_id FROM task_roles ORDER BY task_id") == [("task-1", halton),
                                                                                          ("task-2", rochdale)]
    assert _rows(legacy, "SELECT council_id FROM pending_timers") == [(rochdale,)]
    assert _rows(legacy, "SELECT case_id, council_id FROM audit_events ORDER BY case_id") == [(1, halton),
                                                                                            (2, rochdale)]
    assert _rows(legacy, "SELECT council_id FROM notifications") == [(rochdale,)]
    # The deployment is split: each council keeps its own files and the one no council's prefix names.
    files = _rows(legacy, "SELECT p.key, f.name FROM process_versions p JOIN deployment_files f "
                          "ON f.deployment_id = p.deployment_id ORDER BY p.key, f.name")
    assert files == [("halton_step_up", "halton_step_up.bpmn"), ("halton_step_up", "shared.form"),
                     ("rochdale_step_up", "rochdale_step_up.bpmn"), ("rochdale_step_up", "shared.form")]
    assert _rows(legacy, "SELECT p.council_id = d.council_id FROM process_versions p JOIN deployments d "
                         "ON d.id = p.deployment_id") == [(True,), (True,)]
    # sam acted in Halton only (started HAL-1); nobody gets a role in a council they never worked in.
    assert _rows(legacy, "SELECT user_id, council_id, role FROM memberships") == [(1, halton, "social_worker")]


def test_rows_move_into_the_council_named_on_the_command_line(legacy):
    with legacy.app_context():
        upgrade(x_arg=["council=halton"])
    [(halton,)] = _rows(legacy, "SELECT id FROM councils WHERE key = 'halton'")
    assert _rows(legacy, "SELECT count(*) FROM councils") == [(1,)]
    for table in ("cases", "tasks", "pending_timers", "audit_events", "notifications", "process_versions",
                  "deployments", "deployment_files"):
        assert _rows(legacy, f"SELECT DISTINCT council_id FROM {table}") == [(halton,)], table
    assert sorted(_rows(legacy, "SELECT user_id, role FROM memberships")) == [(1, "social_worker"),
                                                                            (2, "team_manager")]


def test_a_new_database_upgrades_and_downgrades(database_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TIMERS_ENABLED": False, "SECRET_KEY": "test"})
    with app.app_context():
        if database_url.startswith("postgresql"):
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        from flask_migrate import downgrade

        downgrade(revision=BEFORE_COUNCILS)
        upgrade()
        db.session.remove()
        db.engine.dispose()


def test_user_names_become_the_ids_of_the_users_of_the_council(legacy):
    """Issue 11: who started a case, holds or closed a task becomes a user id: the user of that name who works
    for the row's council; a name of nobody there (or of someone of another council only) becomes NULL."""
    with legacy.app_context():
        upgrade(revision="f3b9c0d2a7e1")
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT set_config('app.all_councils', 'on', true)"))
            connection.execute(text("UPDATE tasks SET assignee = 'sam', closed_by = 'sam' WHERE id = 'task-1'"))
            connection.execute(text("UPDATE tasks SET assignee = 'sam', closed_by = 'ghost' WHERE id = 'task-2'"))
            connection.execute(text("UPDATE cases SET started_by = 'sam' WHERE id = 2"))
        upgrade()
    # sam works for Halton only: Halton's rows name sam by id, Rochdale's name nobody.
    assert _rows(legacy, "SELECT id, started_by_id FROM cases ORDER BY id") == [(1, 1), (2, None)]
    assert _rows(legacy, "SELECT id, assignee_id, closed_by_id FROM tasks ORDER BY id") == [("task-1", 1, 1),
                                                                                          ("task-2", None, None)]


def test_the_references_of_existing_cases_are_found_by_part(legacy):
    """Issue 16: migration b7e2c4d6f8a1 writes the suffixes of every existing case's lower-cased reference (what a
    reference search ranges over), each in its case's council."""
    with legacy.app_context():
        upgrade()
    councils = dict(_rows(legacy, "SELECT id, council_id FROM cases"))
    rows = _rows(legacy, "SELECT case_id, council_id, suffix FROM reference_suffixes ORDER BY case_id, suffix")
    assert [(case, council, bytes(suffix)) for case, council, suffix in rows] == [
        (case, councils[case], suffix) for case, reference in ((1, b"hal-1"), (2, b"roc-1"))
        for suffix in sorted(reference[start:] for start in range(len(reference)))]


def test_a_migration_runs_without_the_requests_statement_timeout_and_the_pool_gets_it_back(postgres_url):
    """An index built on a large table may take minutes: a migration is not cut off by the statement timeout
    that bounds a request, and does not hold the writes of starts and completions while it builds an index on
    a table they write (CONCURRENTLY); the connection it used goes back to the pool with the timeout again."""
    from sqlalchemy import event

    app = create_app({"SQLALCHEMY_DATABASE_URI": postgres_url, "TIMERS_ENABLED": False, "SECRET_KEY": "test",
                      "DATABASE_STATEMENT_TIMEOUT_SECONDS": 7})
    seen, indexes = [], []

    def note(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("CREATE TABLE") and not seen:
            seen.append(conn.connection.dbapi_connection.execute("SHOW statement_timeout").fetchone()[0])
        if "ix_task_roles_task_covering" in statement and statement.lstrip().upper().startswith("CREATE"):
            indexes.append(" ".join(statement.split()[:4]))

    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        event.listen(db.engine, "before_cursor_execute", note)
        try:
            upgrade()
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
        assert seen == ["0"]
        assert indexes == ["CREATE INDEX CONCURRENTLY ix_task_roles_task_covering"]
        assert db.engine.pool.checkedin() == 1  # the migration's connection, back in the pool: the one asked next
        assert db.session.execute(text("SHOW statement_timeout")).scalar() == "7s"
        db.session.remove()
        db.engine.dispose()


def test_what_existing_cases_wait_for_is_indexed(legacy):
    """Issue 16: migration d4f7b2e9a6c1 writes a row of ``case_waits`` for each message and signal name an existing
    case waits for, in its case's council (a list that is not a list names nothing), before its triggers keep them."""
    with legacy.app_context():
        upgrade(revision="c8e1a5d3f2b7")
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT set_config('app.all_councils', 'on', true)"))
            connection.execute(text("UPDATE cases SET waiting_for = '[\"immediate_risk\", \"immediate_risk\"]', "
                                    "waiting_signals = '[\"school_closure\"]' WHERE id = 1"))
            connection.execute(text("UPDATE cases SET waiting_for = '{}', waiting_signals = '\"x\"' WHERE id = 2"))
        upgrade()
    councils = dict(_rows(legacy, "SELECT id, council_id FROM cases"))
    assert _rows(legacy, "SELECT case_id, council_id, kind, name FROM case_waits ORDER BY case_id, kind") == [
        (1, councils[1], "message", "immediate_risk"), (1, councils[1], "signal", "school_closure")]
