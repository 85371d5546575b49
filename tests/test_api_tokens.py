"""API tokens that expire and can be revoked, never in a URL; API answers never cached (issue 11, item 4)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from service import auth, create_app
from service.engine import clock
from service.engine.clock import FixedClock
from service.models import ApiToken, User, db

from conftest import _settings, save_user

BEFORE = "5a1e0c0c1110"  # the revision before api_tokens


@pytest.fixture
def time():
    fixed = FixedClock(datetime(2027, 1, 4, 9, 0, tzinfo=timezone.utc))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)


@pytest.fixture
def api(app, time, tokens):
    """The conftest users; the API answers as whoever's token is given."""
    client = app.test_client()

    def call(method, path, token="token-worker", **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    return call


def _issue(app, name="worker", days=None, label="test") -> str:
    with app.app_context():
        user = db.session.query(User).filter_by(name=name).one()
        token = auth.issue_token(db.session, user, label=label, days=days)
        db.session.commit()
    return token


def test_a_user_holds_several_tokens_and_lists_them_without_the_tokens(app, api):
    second = _issue(app, label="case management system")
    assert api("GET", "/tasks", token=second).status_code == 200
    assert api("GET", "/tasks").status_code == 200  # the first still works
    listed = api("GET", "/tokens", token=second)
    assert listed.status_code == 200
    assert [t["label"] for t in listed.json] == ["case management system", "given"]
    assert listed.json[0]["last_used_at"] is not None
    assert second not in listed.get_data(as_text=True) and "hash" not in listed.get_data(as_text=True)


def test_a_revoked_token_gets_401_saying_so(app, api):
    spare = _issue(app)
    revoked = api("POST", "/tokens/revoke", token=spare, json={})
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    refused = api("GET", "/tasks", token=spare)
    assert refused.status_code == 401 and "revoked" in refused.json["message"]
    assert api("GET", "/tasks").status_code == 200  # the user's other token is untouched


def test_a_token_is_revoked_by_id_and_only_by_its_holder(app, api):
    spare = _issue(app)
    spare_id = next(t["id"] for t in api("GET", "/tokens", token=spare).json if t["label"] == "test")
    assert api("POST", "/tokens/revoke", token="token-manager", json={"id": spare_id}).status_code == 404
    assert api("GET", "/tasks", token=spare).status_code == 200
    assert api("POST", "/tokens/revoke", json={"id": spare_id}).status_code == 200
    assert api("GET", "/tasks", token=spare).status_code == 401


def test_a_token_expires(app, api, time):
    brief = _issue(app, days=1)
    assert api("GET", "/tasks", token=brief).status_code == 200
    time.advance(days=1)
    refused = api("GET", "/tasks", token=brief)
    assert refused.status_code == 401 and "expired on 05 January 2027" in refused.json["message"]


def test_new_tokens_last_api_token_days_by_default(app, time, tokens):
    app.config["API_TOKEN_DAYS"] = 90
    token = _issue(app)
    with app.app_context():
        held = db.session.query(ApiToken).filter_by(token_hash=auth.hash_token(token)).one()
        assert held.expires_at == time.now() + timedelta(days=90)


def test_an_unknown_token_gets_401(api):
    refused = api("GET", "/tasks", token="made-up")
    assert refused.status_code == 401 and "Bearer" in refused.json["message"]


def test_the_command_line_issues_lists_and_revokes_tokens(app, api, time):
    runner = app.test_cli_runner()
    issued = runner.invoke(args=["users", "token", "worker", "--days", "7", "--label", "nightly export"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    assert api("GET", "/tasks", token=token).status_code == 200
    listed = runner.invoke(args=["users", "tokens", "worker"]).output
    assert "nightly export" in listed and "expires 2027-01-11" in listed and token not in listed
    token_id = int(next(line for line in listed.splitlines() if "nightly export" in line).split()[0])
    assert runner.invoke(args=["users", "revoke-token", "worker", str(token_id)]).exit_code == 0
    assert api("GET", "/tasks", token=token).status_code == 401
    assert runner.invoke(args=["users", "token", "nobody"]).exit_code != 0


def test_updating_a_user_keeps_their_tokens(app, api):
    with app.app_context():
        _, token = save_user(db.session, "worker", ["social_worker"], email="new@council.example")
        db.session.commit()
    assert token is None
    assert api("GET", "/tasks").status_code == 200


def test_no_token_is_read_from_a_url(app, api):
    for rule in app.url_map.iter_rules():
        if rule.arguments or "GET" not in rule.methods or rule.rule.endswith("openapi.json"):
            continue
        for name in ("token", "access_token", "api_key"):
            answer = app.test_client().get(f"{rule.rule}?{name}=token-worker")
            assert answer.status_code in (200, 302, 401, 404), (rule.rule, answer.status_code)
            if rule.rule.startswith("/api/"):
                assert answer.status_code == 401, rule.rule
            elif answer.status_code == 302:
                assert answer.headers["Location"].startswith("/sign-in"), rule.rule


def test_api_answers_are_never_cached(api):
    for answer in (api("GET", "/tasks"), api("GET", "/tasks", token=None), api("GET", "/tokens")):
        assert answer.headers["Cache-Control"] == "no-store"


# -- the migration ---------------------------------------------------------------------------------

def test_the_upgrade_moves_each_users_token_into_api_tokens(database_url, time):
    app = create_app(_settings(database_url, {}))
    with app.app_context():
        if database_url.startswith("postgresql"):
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(revision=BEFORE)
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO users (id, name, token_hash, failed_sign_ins, is_operator, created_at) "
                                    "VALUES (1, 'old-hand', :h, 0, false, CURRENT_TIMESTAMP)"),
                               {"h": auth.hash_token("old-token")})
        upgrade()
        held = db.session.query(ApiToken).one()
        assert held.user_id == 1 and held.revoked_at is None
        assert held.expires_at - datetime.now(timezone.utc) > timedelta(days=89)
        assert auth.user_for_token(db.session, "old-token").name == "old-hand"
        db.session.commit()
        db.session.remove()
        downgrade(revision=BEFORE)
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT token_hash FROM users")).scalar_one() == auth.hash_token("old-token")
        db.session.remove()
        db.engine.dispose()


def test_cached_roles_end_at_once_when_roles_change_or_sessions_end(app, api):
    """The API keeps a token's councils and roles for a few seconds (issue 16), yet new roles, signing out
    everywhere and revocation still take effect on the very next call: each call reads the token and the
    user's session version, which a role change or sign-out raises."""
    from service import tenancy

    assert api("GET", "/tasks").status_code == 200  # cached now
    with app.app_context():
        user = db.session.query(User).filter_by(name="worker").one()
        council = tenancy.council_by_key(db.session, "test")
        auth.set_roles(db.session, user, council, [])  # they no longer work for the council
        db.session.commit()
    gone = api("GET", "/tasks")
    assert gone.status_code == 403 and "any council" in gone.json["message"]
    with app.app_context():
        user = db.session.query(User).filter_by(name="worker").one()
        auth.set_roles(db.session, user, tenancy.council_by_key(db.session, "test"), ["social_worker"])
        db.session.commit()
    assert api("GET", "/tasks").status_code == 200
    with app.app_context():  # revoked by another process: nothing in this one was told
        db.session.execute(text("UPDATE api_tokens SET revoked_at = :now"), {"now": clock.now()})
        db.session.commit()
    assert api("GET", "/tasks").status_code == 401
