"""What the service's logs may hold: where an error happened, never the data it happened to.

An exception's message can quote anything: a database driver quotes the values of a failed row
("Key (reference)=(Smith) already exists"), an SMTP server quotes the refused address, an engine error
quotes a case's data. So every log record of the service's loggers keeps an exception's type and its
stack (files, lines, functions) and drops its message. SQLAlchemy's ``hide_parameters`` (set in
``create_app``) keeps bound values out of its own messages too.
"""
from __future__ import annotations

import logging
import traceback

from flask import Flask

WITHHELD = "(message withheld: it may quote personal data)"


class NoPersonalData(logging.Filter):
    """Replaces a record's exception with its redacted traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redacted_traceback(record.exc_info[1])
            record.exc_info = None
        return True


def redacted_traceback(error: BaseException) -> str:
    """The traceback of ``error`` and of the errors behind it, with every exception message left out."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        stack = "".join(traceback.format_tb(current.__traceback__))
        kind = f"{type(current).__module__}.{type(current).__qualname__}"
        parts.append(f"Traceback (most recent call last):\n{stack}{kind}: {WITHHELD}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\nbehind it:\n\n".join(parts)


def init_app(app: Flask) -> None:
    """Filter the app's logger and every ``service.*`` logger (the outbox, the timer sweep)."""
    names = ["service", app.logger.name] + [n for n in logging.root.manager.loggerDict if n.startswith("service.")]
    for name in dict.fromkeys(names):
        protect(logging.getLogger(name))


def protect(logger: logging.Logger) -> None:
    if not any(isinstance(f, NoPersonalData) for f in logger.filters):
        logger.addFilter(NoPersonalData())
