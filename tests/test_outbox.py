"""Reminders and escalations by email: a real SMTP server (aiosmtpd) on 127.0.0.1, one that is down,
one that refuses, and the in-app list that shows every notification whatever happened to its email."""
from __future__ import annotations

import email
import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from conftest import FIXTURES, USERS, Api, make_app, everything
from service import outbox, scheduler
from conftest import save_user
from service.models import Notification, db

TIMERS = FIXTURES / "timers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it accepts (or answering with ``reply`` instead)."""

    def __init__(self, delay: float = 0.0):
        self.messages: list[email.message.Message] = []
        self.envelopes = []
        self.reply: str | None = None
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        if self.delay:
            time.sleep(self.delay)  # a slow server: the sender holds its claim meanwhile
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def smtp_app(database_url, smtp_port):
    app = make_app(database_url, SMTP_ENABLED=True, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port,
                   SMTP_SENDER="pathways@council.example")
    with app.app_context(), everything():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}", email=f"{name}@council.example")
        db.session.commit()
    yield app
    with app.app_context(), everything():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def api(smtp_app):
    client = Api(smtp_app, {name: f"token-{name}" for name in USERS})
    assert client.deploy(TIMERS).status_code == 201
    return client


def server(handler, port):
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def escalate(api, app, clock_, reference="FAM-1"):
    """Start a visit (due in a day) and let its two-day escalation fire: one email for the team manager."""
    case = api.post("/cases", json={"process": "timers_escalate", "reference": reference, "data": {}}).json
    clock_.advance(days=2)
    assert scheduler.fire_due(app) >= 1
    return case


def outbox_rows(app):
    with app.app_context(), everything():
        rows = list(db.session.scalars(select(Notification).order_by(Notification.id)))
        db.session.expunge_all()
        return rows


def test_an_escalation_is_emailed_over_smtp(smtp_app, api, smtp_port, frozen_clock):
    inbox = Inbox()
    controller = server(inbox, smtp_port)
    try:
        escalate(api, smtp_app, frozen_clock)
        assert outbox.send_due(smtp_app) == 1
        assert outbox.send_due(smtp_app) == 0  # sent once
    finally:
        controller.stop()
    [message] = inbox.messages
    assert inbox.envelopes[0].mail_from == "pathways@council.example"
    assert inbox.envelopes[0].rcpt_tos == ["manager@council.example"]
    assert message["Subject"] == "Escalation: Visit the family (case FAM-1)"
    body = message.get_payload()
    assert "Case: FAM-1 (Escalate when late)" in body and "Step: Visit the family" in body
    assert "This step is 1 day late." in body
    [row] = outbox_rows(smtp_app)
    assert row.email_sent_at == frozen_clock.now() and row.email_attempts == 1 and row.email_error is None
    # ... and it is in the manager's in-app list too
    [note] = api.get("/notifications", as_="manager").json
    assert note["subject"] == message["Subject"] and note["kind"] == "escalation"


def test_a_notification_is_kept_while_the_smtp_server_is_down_and_sent_when_it_is_back(
        smtp_app, api, smtp_port, frozen_clock):
    escalate(api, smtp_app, frozen_clock)
    assert outbox.send_due(smtp_app) == 0  # nothing listens on the port
    [row] = outbox_rows(smtp_app)
    assert row.email_sent_at is None and row.email_attempts == 1
    assert row.email_error.startswith("ConnectionRefusedError")
    assert row.email_next_attempt_at == frozen_clock.now() + timedelta(minutes=1)
    assert [n["kind"] for n in api.get("/notifications", as_="manager").json] == ["escalation"]  # in-app at once

    assert outbox.send_due(smtp_app) == 0  # not yet time to try again
    assert outbox_rows(smtp_app)[0].email_attempts == 1
    frozen_clock.advance(minutes=1)
    assert outbox.send_due(smtp_app) == 0
    row = outbox_rows(smtp_app)[0]
    assert row.email_attempts == 2 and row.email_next_attempt_at == frozen_clock.now() + timedelta(minutes=2)

    inbox = Inbox()
    controller = server(inbox, smtp_port)  # the server is back
    try:
        frozen_clock.advance(minutes=2)
        assert outbox.send_due(smtp_app) == 1
    finally:
        controller.stop()
    assert [m["To"] for m in inbox.messages] == ["manager@council.example"]
    row = outbox_rows(smtp_app)[0]
    assert row.email_sent_at is not None and row.email_error is None and row.email_attempts == 3


def test_while_the_server_is_down_one_attempt_is_made_per_round_and_nothing_is_lost(
        smtp_app, api, smtp_port, frozen_clock):
    for n in range(3):
        api.post("/cases", json={"process": "timers_escalate", "reference": f"FAM-{n}", "data": {}})
    frozen_clock.advance(days=2)
    assert scheduler.fire_due(smtp_app) == 3
    assert outbox.send_due(smtp_app) == 0
    rows = outbox_rows(smtp_app)
    assert [r.email_attempts for r in rows] == [1, 0, 0]  # the first failure stops the round
    inbox = Inbox()
    controller = server(inbox, smtp_port)
    try:
        frozen_clock.advance(minutes=1)
        assert outbox.send_due(smtp_app) == 3
    finally:
        controller.stop()
    assert sorted(m["Subject"] for m in inbox.messages) == [
        f"Escalation: Visit the family (case FAM-{n})" for n in range(3)]


def test_a_refusing_server_is_retried_with_backoff_capped_at_an_hour(smtp_app, api, smtp_port, frozen_clock):
    escalate(api, smtp_app, frozen_clock)
    inbox = Inbox()
    inbox.reply = "451 Requested action aborted: try again later"
    controller = server(inbox, smtp_port)
    try:
        delays = []
        for _ in range(9):
            assert outbox.send_due(smtp_app) == 0
            row = outbox_rows(smtp_app)[0]
            delays.append(row.email_next_attempt_at - frozen_clock.now())
            frozen_clock.move_to(row.email_next_attempt_at)
        assert [int(d.total_seconds() // 60) for d in delays] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
        assert "451" in row.email_error
        inbox.reply = None
        assert outbox.send_due(smtp_app) == 1
    finally:
        controller.stop()
    assert len(inbox.messages) == 1


def test_the_timer_service_sweep_sends_the_outbox(smtp_app, api, smtp_port, frozen_clock):
    inbox = Inbox()
    controller = server(inbox, smtp_port)
    try:
        api.post("/cases", json={"process": "timers_escalate", "reference": "FAM-1", "data": {}})
        frozen_clock.advance(days=2)
        scheduler.TimerService(smtp_app).sweep()  # what the background job runs: fire, then send
    finally:
        controller.stop()
    assert [m["Subject"] for m in inbox.messages] == ["Escalation: Visit the family (case FAM-1)"]


def test_two_senders_at_once_email_each_notification_once(smtp_app, api, smtp_port, frozen_clock, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("several sending processes need PostgreSQL (SQLite: one service process)")
    for n in range(8):
        api.post("/cases", json={"process": "timers_escalate", "reference": f"FAM-{n}", "data": {}})
    frozen_clock.advance(days=2)
    assert scheduler.fire_due(smtp_app) == 8
    inbox = Inbox(delay=0.05)
    controller = server(inbox, smtp_port)
    try:
        counts = []
        threads = [threading.Thread(target=lambda: counts.append(outbox.send_due(smtp_app))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        controller.stop()
    assert sum(counts) == 8
    subjects = [m["Subject"] for m in inbox.messages]
    assert sorted(subjects) == sorted(set(subjects)) and len(subjects) == 8


def test_an_email_refused_for_ever_is_given_up_but_the_notification_stays():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from service import outbox

    notification = SimpleNamespace(id=1, email_attempts=outbox.MAX_EMAIL_ATTEMPTS - 1, email_next_attempt_at=None,
                                   email_error=None)
    fixed = datetime(2027, 1, 4, 9, 0, tzinfo=timezone.utc)
    from service.engine import clock
    with clock.clock_at(fixed):
        outbox._defer(notification, OSError("refused"))
    assert notification.email_next_attempt_at is None
    assert notification.email_attempts == outbox.MAX_EMAIL_ATTEMPTS and "refused" in notification.email_error


# -- STARTTLS and sign-in --------------------------------------------------------------------------

def _certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (the council's own mail relay, trusted through SMTP_CA_FILE)."""
    import ipaddress
    from datetime import datetime, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.council.example")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class SecureInbox(Inbox):
    """Keeps, with each message, whether the session was encrypted and signed in when it was sent."""

    def __init__(self):
        super().__init__()
        self.sessions: list[tuple[bool, bool]] = []

    async def handle_DATA(self, server, session, envelope):
        self.sessions.append((bool(session.ssl), bool(session.authenticated)))
        return await super().handle_DATA(server, session, envelope)


def _relay(port, cert_file, key_file, inbox):
    """A relay that, like a council's, takes nothing before STARTTLS and sign-in (pathways / s3cret)."""
    import ssl

    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"pathways", b"s3cret"))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            auth_required=True, authenticator=authenticator)
    controller.start()
    return controller


def _secure_app(database_url, port, **smtp):
    app = make_app(database_url, SMTP_ENABLED=True, SMTP_HOST="127.0.0.1", SMTP_PORT=port,
                   SMTP_SENDER="pathways@council.example", SMTP_STARTTLS=True, SMTP_USERNAME="pathways", **smtp)
    with app.app_context(), everything():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}", email=f"{name}@council.example")
        db.session.commit()
    client = Api(app, {name: f"token-{name}" for name in USERS})
    assert client.deploy(TIMERS).status_code == 201
    return app, client


def test_email_goes_over_starttls_and_signs_in(database_url, smtp_port, frozen_clock, tmp_path):
    cert_file, key_file = _certificate(tmp_path)
    app, client = _secure_app(database_url, smtp_port, SMTP_PASSWORD="s3cret", SMTP_CA_FILE=cert_file)
    inbox = SecureInbox()
    controller = _relay(smtp_port, cert_file, key_file, inbox)
    try:
        escalate(client, app, frozen_clock)
        assert outbox.send_due(app) == 1
    finally:
        controller.stop()
    assert inbox.sessions == [(True, True)] and inbox.envelopes[0].rcpt_tos == ["manager@council.example"]


def test_an_untrusted_relay_or_a_wrong_password_gets_no_email_and_no_address_in_the_log(
        database_url, smtp_port, frozen_clock, tmp_path, caplog):
    cert_file, key_file = _certificate(tmp_path)
    app, client = _secure_app(database_url, smtp_port, SMTP_PASSWORD="wrong", SMTP_CA_FILE=cert_file)
    inbox = SecureInbox()
    controller = _relay(smtp_port, cert_file, key_file, inbox)
    logging.getLogger().addHandler(caplog.handler)  # the migration's logging setup took it off
    caplog.set_level(logging.INFO)
    try:
        escalate(client, app, frozen_clock)
        assert outbox.send_due(app) == 0  # the relay refuses the password
        assert outbox_rows(app)[0].email_error.startswith("SMTP")
        app.config["SMTP_CA_FILE"] = None  # and a relay whose certificate nothing vouches for is not trusted
        frozen_clock.advance(minutes=1)
        assert outbox.send_due(app) == 0
    finally:
        controller.stop()
    assert inbox.messages == []
    assert outbox_rows(app)[0].email_error.startswith("SSLCertVerificationError")
    logged = service_log(caplog)
    assert "failed (attempt 2" in logged and "SSLCertVerificationError" in logged and "@council.example" not in logged


def test_a_refused_email_is_logged_without_the_address_the_server_quotes(smtp_app, api, smtp_port, frozen_clock,
                                                                         caplog):
    inbox = Inbox()
    inbox.reply = "550 <manager@council.example>: no such mailbox here"
    controller = server(inbox, smtp_port)
    try:
        escalate(api, smtp_app, frozen_clock)
        with caplog.at_level(logging.INFO):
            assert outbox.send_due(smtp_app) == 0
    finally:
        controller.stop()
    logged = service_log(caplog)
    assert "failed (attempt 1" in logged and "SMTPDataError 550" in logged
    assert "@council.example" not in logged and "manager" not in logged


def service_log(caplog) -> str:
    """What the service logged (the test's SMTP server logs every address it is given: it is not ours)."""
    return "\n".join(caplog.handler.format(r) for r in caplog.records if r.name.startswith("service"))
