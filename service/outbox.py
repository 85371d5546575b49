"""Sending notifications by email over SMTP, with retries: an SMTP server that is down loses nothing."""
from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage

from flask import Flask
from sqlalchemy import select

from service.engine import clock
from service.models import Notification, User, db

log = logging.getLogger(__name__)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


def send_due(app: Flask, limit: int = 100) -> int:
    """Email the notifications whose next attempt is due; return how many were sent."""
    if not app.config["SMTP_ENABLED"]:
        return 0
    sent = 0
    with app.app_context():
        query = (select(Notification, User).join(User, Notification.user_id == User.id)
                 .where(Notification.email_sent_at.is_(None), Notification.email_next_attempt_at <= clock.now())
                 .order_by(Notification.email_next_attempt_at).limit(limit))
        if db.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Notification)
        for notification, user in db.session.execute(query).all():
            try:
                _send(app, notification, user)
            except (OSError, smtplib.SMTPException) as error:
                notification.email_attempts += 1
                delay = min(FIRST_RETRY * 2 ** (notification.email_attempts - 1), LONGEST_RETRY)
                notification.email_next_attempt_at = clock.now() + delay
                notification.email_error = f"{type(error).__name__}: {error}"[:500]
                log.warning("email to %s failed (attempt %d): %s", user.email, notification.email_attempts, error)
            else:
                notification.email_sent_at, notification.email_error = clock.now(), None
                notification.email_attempts += 1
                sent += 1
            db.session.commit()
    return sent


def _send(app: Flask, notification: Notification, user: User) -> None:
    message = EmailMessage()
    message["From"] = app.config["SMTP_SENDER"]
    message["To"] = user.email
    message["Subject"] = notification.subject
    message.set_content(notification.body)
    with smtplib.SMTP(app.config["SMTP_HOST"], app.config["SMTP_PORT"], timeout=10) as smtp:
        smtp.send_message(message)
