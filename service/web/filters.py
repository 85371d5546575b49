"""Jinja filters: London dates as people write them, guidance text as safe paragraphs, case values."""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from flask import Flask
from markupsafe import Markup, escape

from service import case_view, paging
from service import cases as case_service
from service.case_view import plain_date, plain_datetime, plain_value
from service.wording import label_from_key, role_label
from service.engine import clock
from service.engine.clock import LONDON
from service.models import Case, db


def london_datetime(value: datetime | None) -> str:
    """'23 December 2026 at 9am', '9 December 2026 at 2:30pm' (Europe/London, GOV.UK style)."""
    return plain_datetime(value)


def london_date(value: datetime | date | None) -> str:
    """'23 December 2026' (Europe/London)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = clock.as_utc(value).astimezone(LONDON)
    return f"{value.day} {value:%B %Y}"


def iso(value: datetime | None) -> str:
    return clock.as_utc(value).isoformat() if value is not None else ""


def is_overdue(value: datetime | None) -> bool:
    return value is not None and clock.as_utc(value) < clock.now()


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_BULLET = re.compile(r"^\s*[-*]\s+")
_ITALIC = re.compile(r"(?<![\w*])_(.+?)_(?![\w*])")


def _inline(text: str) -> str:
    """Escaped text with **bold** and _italic_ (applied after escaping, so no markup gets through)."""
    html = str(escape(text))
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    return _ITALIC.sub(r"<em>\1</em>", html)


def guidance(text: str | None) -> Markup:
    """Markdown-ish text, safely: escape everything, then blank-line paragraphs, '#' headings, '- ' lists."""
    if not text:
        return Markup("")
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    out = []
    for block in blocks:
        lines = [line.rstrip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", lines[0])
        if heading and len(lines) == 1:
            size = "m" if len(heading[1]) <= 2 else "s"
            out.append(f'<h2 class="govuk-heading-{size}">{_inline(heading[2])}</h2>')
        elif all(_BULLET.match(line) for line in lines):
            items = "".join(f"<li>{_inline(_BULLET.sub('', line))}</li>" for line in lines)
            out.append(f'<ul class="govuk-list govuk-list--bullet">{items}</ul>')
        else:
            out.append(f'<p class="govuk-body">{"<br>".join(_inline(line) for line in lines)}</p>')
    return Markup("\n".join(out))


def show_value(value: Any) -> str:
    """A case value as plain text (the template escapes it): Yes/No, lists joined, objects as JSON."""
    if value is None:
        return "Not given"
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(show_value(v) for v in value) or "None"
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return str(value)


def counted(value: int) -> str:
    """A count the lists stop at (``paging.COUNT_CAP`` and one): '2,417', or 'more than 10,000'."""
    return f"more than {paging.COUNT_CAP:,}" if value > paging.COUNT_CAP else f"{value:,}"


def case_outcome(case: Case) -> str:
    """A case's outcome as its pathway names it ('Stepped down to TAF'), or '' while it has none."""
    if not case.outcome:
        return ""
    return case_view.outcome_text(case_service.process_of(db.session, case), case.outcome) or ""


def register(app: Flask) -> None:
    app.add_template_filter(case_outcome)
    app.add_template_filter(counted)
    app.add_template_filter(london_datetime)
    app.add_template_filter(london_date)
    app.add_template_filter(iso)
    app.add_template_filter(guidance)
    app.add_template_filter(show_value)
    app.add_template_filter(label_from_key)
    app.add_template_filter(plain_date)
    app.add_template_filter(plain_datetime)
    app.add_template_filter(plain_value)
    app.add_template_filter(role_label)
    app.add_template_global(is_overdue)
