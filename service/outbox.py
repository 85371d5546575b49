"""Sending notifications by email over SMTP, with retries: an SMTP server that is down loses nothing."""
from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

from flask import Flask
from sqlalchemy import select

from service import tenancy
from service.engine import clock
from service.models import Council, Notification, User, db

log = logging.getLogger(__name__)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
#: About two days of hourly retries; after that the email is given up (the in-app notification stays).
MAX_EMAIL_ATTEMPTS = 54


def send_due(app: Flask, limit: int = 100) -> int:
    """Email the notifications whose next attempt is due; return how many were sent.

    Each notification is claimed on its own (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sent and committed,
    so two service processes never email the same one. A failed attempt is kept with its error and tried
    again later (1, 2, 4 ... minutes, at most hourly). When the server cannot be reached the rest wait for
    the next round instead of each waiting for the connection to time out.
    """
    if not app.config["SMTP_ENABLED"]:
        return 0
    sent = 0
    with app.app_context(), tenancy.all_councils(db.session):  # the outbox serves every council
        session = db.session
        due = list(session.scalars(
            select(Notification.id).where(Notification.email_sent_at.is_(None),
                                          Notification.email_next_attempt_at <= clock.now())
            .order_by(Notification.email_next_attempt_at, Notification.id).limit(limit)))
        session.rollback()
        smtp: smtplib.SMTP | None = None
        try:
            for notification_id in due:
                claimed = _claim(session, notification_id)
                if claimed is None:  # sent meanwhile, or being sent by another process
                    session.rollback()
                    continue
                notification, user, council = claimed
                try:
                    if smtp is None:
                        smtp = _connect(app)
                    _send(app, smtp, notification, user, council)
                except (OSError, smtplib.SMTPException) as error:
                    _defer(notification, error)
                    session.commit()
                    if smtp is None or isinstance(error, (OSError, smtplib.SMTPServerDisconnected)):
                        break  # the server is down or went away: the rest wait for the next round
                    continue
                notification.email_sent_at, notification.email_error = clock.now(), None
                notification.email_attempts += 1
                session.commit()
                sent += 1
        finally:
            session.rollback()
            if smtp is not None:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    smtp.close()
    return sent


def _claim(session, notification_id: int) -> tuple[Notification, User, Council] | None:
    query = (select(Notification, User, Council).join(User, Notification.user_id == User.id)
             .join(Council, Notification.council_id == Council.id)
             .where(Notification.id == notification_id, Notification.email_sent_at.is_(None),
                    Notification.email_next_attempt_at <= clock.now())
             .execution_options(populate_existing=True))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Notification)
    row = session.execute(query).first()
    return (row[0], row[1], row[2]) if row is not None else None


def _defer(notification: Notification, error: Exception) -> None:
    notification.email_attempts += 1
    delay = min(FIRST_RETRY * 2 ** min(notification.email_attempts - 1, 16), LONGEST_RETRY)  # no overflow
    notification.email_next_attempt_at = clock.now() + delay
    notification.email_error = f"{type(error).__name__}: {error}"[:500]  # encrypted at rest; shown to no one else
    if notification.email_attempts >= MAX_EMAIL_ATTEMPTS:
        notification.email_next_attempt_at = None
        log.error("email of notification %d given up after %d attempts: %s", notification.id,
                  notification.email_attempts, _reason(error))
        return
    log.warning("email of notification %d failed (attempt %d, next in %s): %s", notification.id,
                notification.email_attempts, delay, _reason(error))


def _reason(error: Exception) -> str:
    """What went wrong, without the server's words: they may quote the address (``<sam@...> refused``)."""
    code = getattr(error, "smtp_code", None) or getattr(error, "errno", None)
    return f"{type(error).__name__}{f' {code}' if code else ''}"


def _connect(app: Flask) -> smtplib.SMTP:
    """Connect; with ``SMTP_STARTTLS`` the session is encrypted (the server's certificate checked) before
    anything is said, and with ``SMTP_USERNAME`` the service signs in."""
    smtp = smtplib.SMTP(app.config["SMTP_HOST"], app.config["SMTP_PORT"], timeout=10)
    try:
        if app.config.get("SMTP_STARTTLS"):
            smtp.starttls(context=_tls_context(app))
        if app.config.get("SMTP_USERNAME"):
            smtp.login(app.config["SMTP_USERNAME"], app.config.get("SMTP_PASSWORD") or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _tls_context(app: Flask) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if app.config.get("SMTP_CA_FILE"):
        context.load_verify_locations(cafile=app.config["SMTP_CA_FILE"])
    return context


def _send(app: Flask, smtp: smtplib.SMTP, notification: Notification, user: User, council: Council) -> None:
    message = EmailMessage()
    message["From"] = council.email_sender or app.config["SMTP_SENDER"]
    message["To"] = user.email
    message["Subject"] = notification.subject
    message.set_content(notification.body)
    smtp.send_message(message)
