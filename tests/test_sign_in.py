"""Sign-in that holds (issue 11, item 4): parallel guesses, rate limits, unknown names, sessions that end.

Each rule of ``service.auth`` about signing in and page sessions has a test here that fails without it,
on SQLite and on PostgreSQL (where the service runs as an unprivileged role under row-level security).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from service import auth
from service.engine import clock
from service.engine.clock import FixedClock
from service.errors import InvalidData
from service.models import User, db

from conftest import Browser, make_app, page_text, password_hash, save_user

PASSWORD = "a long enough password"
#: Rate limits out of the way, for the tests of the lock (the limits have tests of their own).
NO_LIMITS = {"SIGN_IN_LIMIT_PER_ACCOUNT": 10_000, "SIGN_IN_LIMIT_PER_ADDRESS": 10_000}


@pytest.fixture
def time():
    fixed = FixedClock(datetime(2027, 1, 4, 9, 0, tzinfo=timezone.utc))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)


def _app(database_url, **config):
    app = make_app(database_url, WTF_CSRF_ENABLED=False, **config)
    with app.app_context():
        user, _ = save_user(db.session, "worker", ["social_worker"])
        user.password_hash = password_hash(PASSWORD)
        db.session.commit()
    return app


@pytest.fixture
def app(database_url, time):
    app = _app(database_url, **NO_LIMITS)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def checks(monkeypatch):
    """How many passwords were checked against an argon2 hash (and against which hashes)."""
    seen: list[str] = []
    lock = threading.Lock()
    verify = auth._verify

    def counting(stored: str, password: str) -> bool:
        with lock:
            seen.append(stored)
        return verify(stored, password)

    monkeypatch.setattr(auth, "_verify", counting)
    return seen


def sign_in(app, name, password, address="192.0.2.1"):
    return app.test_client().post("/sign-in", data={"name": name, "password": password},
                                  environ_base={"REMOTE_ADDR": address})


# -- the lock -------------------------------------------------------------------------------------

def test_a_hundred_parallel_wrong_passwords_lock_the_account_after_five(app, checks):
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda i: sign_in(app, "worker", f"guess {i}").status_code, range(100)))
    assert answers == [401] * 100
    assert len(checks) == 5  # the other 95 were refused before their password was looked at
    right = sign_in(app, "worker", PASSWORD)
    assert right.status_code == 401 and "locked" in page_text(right)
    assert len(checks) == 5


def test_the_lock_ends_after_its_time(app, checks, time):
    for _ in range(5):
        sign_in(app, "worker", "wrong")
    time.advance(minutes=14)
    assert "locked" in page_text(sign_in(app, "worker", PASSWORD))  # knocking does not lengthen it
    time.advance(minutes=1, seconds=1)
    assert sign_in(app, "worker", PASSWORD).status_code == 302


def test_a_right_password_clears_the_count(app):
    for _ in range(4):
        sign_in(app, "worker", "wrong")
    assert sign_in(app, "worker", PASSWORD).status_code == 302
    for _ in range(4):
        sign_in(app, "worker", "wrong")
    assert sign_in(app, "worker", PASSWORD).status_code == 302


def test_nobody_elsewhere_can_lock_a_person_out(app):
    for _ in range(10):
        sign_in(app, "worker", "wrong", address="203.0.113.9")
    assert "locked" in page_text(sign_in(app, "worker", PASSWORD, address="203.0.113.9"))
    assert sign_in(app, "worker", PASSWORD, address="192.0.2.1").status_code == 302


# -- the same answer for an unknown name ----------------------------------------------------------

def test_an_unknown_name_gets_the_same_answer_and_the_same_check(app, checks):
    wrong = sign_in(app, "worker", "wrong password")
    unknown = sign_in(app, "nobody", "wrong password")
    assert (unknown.status_code, page_text(unknown).replace("nobody", "worker")) == (wrong.status_code, page_text(wrong))
    assert len(checks) == 2 and checks[1].startswith("$argon2")  # a real argon2 check for the unknown name too
    assert checks[1] != checks[0]


def test_an_unknown_name_locks_as_a_real_one_does(app):
    for name in ("worker", "nobody"):
        for _ in range(5):
            sign_in(app, name, "wrong")
    real, unknown = sign_in(app, "worker", "wrong"), sign_in(app, "nobody", "wrong")
    assert "locked" in page_text(real)
    assert (unknown.status_code, page_text(unknown).replace("nobody", "worker")) == (real.status_code, page_text(real))


def test_a_user_without_a_password_gets_the_same_answer(app, checks):
    with app.app_context():
        save_user(db.session, "robot", ["social_worker"])  # API only
        db.session.commit()
    assert sign_in(app, "robot", "").status_code == 400
    answer = sign_in(app, "robot", "anything")
    assert answer.status_code == 401 and "not right" in page_text(answer)
    assert len(checks) == 1


# -- rate limits ----------------------------------------------------------------------------------

@pytest.fixture
def limited(database_url, time):
    app = _app(database_url, SIGN_IN_LIMIT_PER_ACCOUNT=3, SIGN_IN_LIMIT_PER_ADDRESS=4, SIGN_IN_LOCK_AFTER=100)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_attempts_at_one_name_from_many_addresses_are_limited(limited, time, checks):
    for i in range(3):
        assert sign_in(limited, "worker", "wrong", address=f"198.51.100.{i}").status_code == 401
    time.advance(minutes=5)
    refused = sign_in(limited, "worker", PASSWORD, address="198.51.100.99")
    assert refused.status_code == 429
    assert "too many attempts to sign in as this user name" in page_text(refused)
    assert refused.headers["Retry-After"] == str(10 * 60 + 1)  # when the first attempt leaves the window
    assert len(checks) == 3
    time.advance(minutes=10, seconds=1)
    assert sign_in(limited, "worker", PASSWORD, address="198.51.100.99").status_code == 302


def test_attempts_from_one_address_are_limited(limited, time):
    for i in range(4):
        assert sign_in(limited, f"name{i}", "wrong").status_code == 401
    refused = sign_in(limited, "worker", PASSWORD)
    assert refused.status_code == 429 and "your address" in page_text(refused)
    assert int(refused.headers["Retry-After"]) > 0
    assert sign_in(limited, "worker", PASSWORD, address="192.0.2.200").status_code == 302


def test_right_passwords_do_not_use_up_the_limits(limited):
    for _ in range(10):
        assert sign_in(limited, "worker", PASSWORD).status_code == 302


# -- page sessions --------------------------------------------------------------------------------

def _signed_in(app) -> Browser:
    browser = Browser(app)
    browser.sign_in("worker", PASSWORD)
    assert browser.get("/").status_code == 200
    return browser


def _replay(app, browser: Browser) -> Browser:
    """Another browser holding a copy of ``browser``'s session cookie."""
    copy = Browser(app)
    copy.client.set_cookie("session", browser.client.get_cookie("session").value)
    return copy


def _is_signed_out(browser: Browser) -> bool:
    answer = browser.get("/")
    return answer.status_code == 302 and answer.headers["Location"].startswith("/sign-in")


def test_a_cookie_replayed_after_signing_out_is_refused(app):
    browser = _signed_in(app)
    copy = _replay(app, browser)
    assert copy.get("/").status_code == 200
    assert browser.post("/sign-out").status_code == 302
    assert _is_signed_out(copy)
    assert _is_signed_out(browser)


def test_signing_out_ends_the_users_other_sessions(app):
    phone, desk = _signed_in(app), _signed_in(app)
    desk.post("/sign-out")
    assert _is_signed_out(phone)


def test_a_new_password_ends_every_session(app):
    browser = _signed_in(app)
    with app.app_context():
        save_user(db.session, "worker", ["social_worker"], password="another long password")
        db.session.commit()
    assert _is_signed_out(browser)


def test_new_roles_end_every_session_and_the_same_roles_do_not(app):
    browser = _signed_in(app)
    with app.app_context():
        save_user(db.session, "worker", ["social_worker"], email="w@council.example")  # roles unchanged
        db.session.commit()
    assert browser.get("/").status_code == 200
    with app.app_context():
        save_user(db.session, "worker", ["social_worker", "team_manager"])
        db.session.commit()
    assert _is_signed_out(browser)


def test_an_idle_session_ends(app, time):
    browser = _signed_in(app)
    time.advance(minutes=29)
    assert browser.get("/").status_code == 200  # used: the idle time starts again
    time.advance(minutes=29)
    assert browser.get("/").status_code == 200
    time.advance(minutes=31)
    assert _is_signed_out(browser)


def test_a_session_ends_after_its_lifetime_however_busy(app, time):
    browser = _signed_in(app)
    for _ in range(12 * 3 - 1):
        time.advance(minutes=20)
        assert browser.get("/").status_code == 200
    time.advance(minutes=21)
    assert _is_signed_out(browser)


def test_a_session_cookie_from_before_session_versions_is_refused(app):
    browser = _signed_in(app)
    with browser.client.session_transaction() as held:
        del held[auth.VERSION]
    assert _is_signed_out(browser)


# -- passwords ------------------------------------------------------------------------------------

def test_a_password_set_through_the_service_follows_the_policy(app):
    with app.app_context():
        with pytest.raises(InvalidData) as short:
            save_user(db.session, "worker", [], password="eleven char")
        assert short.value.errors == {"password": "Use at least 12 characters"}
        with pytest.raises(InvalidData) as named:
            save_user(db.session, "caseworker.jones", [], password="Caseworker.Jones")
        assert named.value.errors == {"password": "Choose a password that is not your user name"}
        db.session.rollback()
        save_user(db.session, "worker", [], password="twelve chars")
        db.session.commit()
        assert db.session.query(User).filter_by(name="worker").one().password_hash.startswith("$argon2")


def test_becoming_the_operator_ends_every_session(app):
    browser = _signed_in(app)
    with app.app_context():
        save_user(db.session, "worker", ["social_worker"], operator=True)
        db.session.commit()
    assert _is_signed_out(browser)


# -- behind a reverse proxy -----------------------------------------------------------------------

def test_behind_a_proxy_the_clients_address_is_the_forwarded_one(database_url, time):
    app = _app(database_url, PROXY_HOPS=1, **NO_LIMITS)

    def through_proxy(client_address, password):
        return app.test_client().post("/sign-in", data={"name": "worker", "password": password},
                                      environ_base={"REMOTE_ADDR": "10.0.0.1"},
                                      headers={"X-Forwarded-For": client_address})

    for _ in range(5):
        through_proxy("203.0.113.9", "wrong")
    assert "locked" in page_text(through_proxy("203.0.113.9", PASSWORD))
    assert through_proxy("192.0.2.1", PASSWORD).status_code == 302  # another client behind the same proxy
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
