"""Validate a submission (JSON from the API, or an HTML form post) against a FormDefinition."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

import re2

from .conditions import is_hidden
from .model import CHOICE_TYPES, Field, FormDefinition, Option

#: The most characters one answer may have (a checklist's items together), unless the caller says otherwise.
MAX_ANSWER_LENGTH = 10_000

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a pattern RE2 refuses is reported to the analyst at deploy, not logged


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """A form pattern compiled by RE2, which matches in time linear in the answer (no backtracking).

    Raises ``re2.error`` for what RE2 cannot run: invalid syntax, look-arounds, back-references.
    """
    return re2.compile(pattern, options=_RE2_OPTIONS)


def validate_submission(form: FormDefinition, data: Mapping, *, source: Literal["json", "html"],
                        max_answer_length: int = MAX_ANSWER_LENGTH,
                        known: Mapping[str, Any] | None = None) -> tuple[dict, dict[str, str]]:
    """Check a submission against a form.

    ``source="json"``: typed values from a REST client (a number must be a JSON number, a boolean
    true/false, a checklist a list). ``source="html"``: strings from a form post, a
    MultiDict-like mapping (``getlist`` is used for checklists when present); dates may come as
    one ISO string or as ``<key>-day``, ``<key>-month``, ``<key>-year`` (plus ``<key>-time`` for
    date-and-time). Returns ``(cleaned, errors)``; errors map field key to a GOV.UK-style message.
    If ``data`` is not a mapping at all (say a JSON array), errors holds one message under "".
    An answer longer than ``max_answer_length`` characters, or holding a NUL character, is refused.
    A field whose ``conditional.hide`` holds, over ``known`` (what the case knows) and the answers, is
    hidden: neither required nor returned, whatever was sent for it.
    """
    if source not in ("json", "html"):
        raise ValueError("source must be 'json' or 'html'")
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if not isinstance(data, Mapping):
        return cleaned, {"": "The submission must be a set of named values (a JSON object)"}
    for f in form.fields:
        if f.readonly:
            continue
        raw = _raw_html(f, data) if source == "html" else data.get(f.key)
        error = _unstorable(f, raw, max_answer_length)
        value, error = (None, error) if error else _clean_value(f, raw, source)
        if error:
            errors[f.key] = error
        else:
            cleaned[f.key] = value
    for key in _hidden_keys(form, cleaned, known or {}):
        cleaned.pop(key, None)
        errors.pop(key, None)
    return cleaned, errors


def _hidden_keys(form: FormDefinition, cleaned: dict[str, Any], known: Mapping[str, Any]) -> list[str]:
    """The fields hidden by their ``conditional.hide`` given what the case knows and the answers given."""
    conditional = [f for f in form.fields if f.hide_if]
    if not conditional:
        return []
    answers = {**known, **{k: v for k, v in cleaned.items() if v is not None or k not in known}}
    return [f.key for f in conditional if is_hidden(f.hide_if, answers)]


def _unstorable(f: Field, raw: Any, max_length: int) -> str | None:
    """Why an answer cannot be taken whatever the field: too long to keep, or a NUL (PostgreSQL text refuses it)."""
    texts = _texts_in(raw)
    if sum(len(t) for t in texts) + len(texts) - 1 > max_length:  # a checklist's items as if one per line
        return f"{_subject(f)} must be {max_length:,} characters or less"
    if any("\0" in t for t in texts):
        return f"{_subject(f)} must not contain a null character"
    return None


def _texts_in(raw: Any) -> list[str]:
    """The text in a raw answer: itself, a checklist's items or a date's parts (nothing deeper is read)."""
    if isinstance(raw, str):
        return [raw]
    parts = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, (list, tuple)) else []
    return [p if isinstance(p, str) else "" for p in parts]


def _getlist(data: Mapping, key: str) -> list:
    if hasattr(data, "getlist"):
        return list(data.getlist(key))
    value = data.get(key)
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _raw_html(f: Field, data: Mapping) -> Any:
    """Collect a field's raw value from a form post; three-part dates become a dict."""
    if f.type == "checklist":
        return [v for v in _getlist(data, f.key) if str(v).strip()]
    if f.type == "date" and f.subtype in ("date", "datetime"):
        names = ("day", "month", "year", "time") if f.subtype == "datetime" else ("day", "month", "year")
        parts = {p: data.get(f"{f.key}-{p}") for p in names}
        if any(v not in (None, "") for v in parts.values()):
            return parts
    values = _getlist(data, f.key)
    return values[-1] if values else None  # last wins: a hidden "false" before a checkbox


def _missing(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or raw == [] or raw == {}


def _clean_value(f: Field, raw: Any, source: str) -> tuple[Any, str | None]:
    """Return (value, None) or (None, message) for one field."""
    if f.type == "boolean":
        return _clean_boolean(f, raw, source)
    if _missing(raw):
        if f.is_required:
            return None, _required_message(f)
        return ([] if f.type == "checklist" else None), None
    if f.type in ("text", "textarea"):
        return _clean_text(f, raw)
    if f.type == "number":
        return _clean_number(f, raw, source)
    if f.type == "date":
        return _clean_date(f, raw)
    if f.type == "checklist":
        return _clean_checklist(f, raw, source)
    return _clean_choice(f, raw, source)


def _clean_text(f: Field, raw: Any) -> tuple[Any, str | None]:
    if not isinstance(raw, str):
        return None, f"{_subject(f)} must be text"
    value = raw.strip()
    if f.min_length is not None and len(value) < f.min_length:
        return None, f"{_subject(f)} must be {f.min_length} characters or more"
    if f.max_length is not None and len(value) > f.max_length:
        return None, f"{_subject(f)} must be {f.max_length} characters or less"
    if f.validation_type == "email" and not _EMAIL.fullmatch(value):
        return None, "Enter an email address in the correct format, like name@example.com"
    if f.validation_type == "phone" and not _PHONE.fullmatch(re.sub(r"[\s\-()]", "", value)):
        return None, "Enter a telephone number, like 01632 960 001, 07700 900 982 or +44 808 157 0192"
    if f.pattern and not compile_pattern(f.pattern).fullmatch(value):
        return None, f"Enter {_phrase(f)} in the correct format"
    return value, None


# RE2, as for patterns: with Python's re the email check took 1.8 s on 16,000 characters (security review L9).
_EMAIL = compile_pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = compile_pattern(r"\+?\d{10,15}")  # after removing spaces, hyphens and brackets


def _tidy(n: int | float) -> int | float:
    return int(n) if float(n).is_integer() else float(n)


def _parse_number_text(text: str) -> int | float | None:
    text = text.strip()
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    return int(d) if d == d.to_integral_value() else float(d)


def _clean_number(f: Field, raw: Any, source: str) -> tuple[Any, str | None]:
    if source == "html" and isinstance(raw, str):
        value = _parse_number_text(raw)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
        value = _tidy(raw)
    else:
        value = None
    if value is None:
        return None, f"{_subject(f)} must be a number"
    if f.integer and not isinstance(value, int):
        return None, f"{_subject(f)} must be a whole number"
    if f.min is not None and f.max is not None and not f.min <= value <= f.max:
        return None, f"{_subject(f)} must be between {f.min} and {f.max}"
    if f.min is not None and value < f.min:
        return None, f"{_subject(f)} must be {f.min} or more"
    if f.max is not None and value > f.max:
        return None, f"{_subject(f)} must be {f.max} or less"
    return value, None


_TRUE, _FALSE = {"true", "on", "yes", "1"}, {"false", "off", "no", "0"}


def _clean_boolean(f: Field, raw: Any, source: str) -> tuple[Any, str | None]:
    if source == "html":
        text = "" if raw is None else str(raw).strip().lower()
        if text in _TRUE:
            value = True
        elif text in _FALSE or (text == "" and not (f.is_required and not f.required_means_true)):
            value = False  # an unticked checkbox sends nothing
        elif text == "":
            return None, _required_message(f)
        else:
            return None, f"{_subject(f)} must be yes or no"
    elif raw is None:
        if f.is_required:
            return None, _required_message(f)
        return None, None
    elif isinstance(raw, bool):
        value = raw
    else:
        return None, f"{_subject(f)} must be true or false"
    if f.is_required and f.required_means_true and value is not True:
        return None, _required_message(f)
    return value, None


def _option_for(f: Field, raw: Any, source: str) -> Option | None:
    for o in f.options:
        if (type(o.value) is type(raw) and o.value == raw) or (source == "html" and str(o.value) == str(raw).strip()):
            return o
    return None


def _clean_choice(f: Field, raw: Any, source: str) -> tuple[Any, str | None]:
    option = _option_for(f, raw, source)
    if option is None:
        return None, f"Select {_phrase(f)} from the list" if f.type == "select" else f"Select {_phrase(f)}"
    return option.value, None


def _clean_checklist(f: Field, raw: Any, source: str) -> tuple[Any, str | None]:
    if not isinstance(raw, list):
        return None, f"{_subject(f)} must be a list of options"
    chosen = []
    for item in raw:
        option = _option_for(f, item, source)
        if option is None:
            return None, f"Select {_phrase(f)} from the options given"
        chosen.append(option.value)
    return [o.value for o in f.options if o.value in chosen], None  # option order, no repeats


def _clean_date(f: Field, raw: Any) -> tuple[Any, str | None]:
    if isinstance(raw, dict):
        return _clean_date_parts(f, raw)
    if not isinstance(raw, str):
        return None, f"{_subject(f)} must be a real date" if f.subtype != "time" else f"{_subject(f)} must be a real time"
    text = raw.strip()
    try:
        if f.subtype == "date":
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError
            return dt.date.fromisoformat(text).isoformat(), None
        if f.subtype == "time":
            if not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2}|Z)?", text):
                raise ValueError
            return _time_iso(dt.time.fromisoformat(text.replace("Z", "+00:00"))), None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", text):
            raise ValueError
        return dt.datetime.fromisoformat(text).isoformat(), None
    except ValueError:
        kind = {"time": "time", "datetime": "date and time"}.get(f.subtype, "date")
        return None, f"{_subject(f)} must be a real {kind}"


def _time_iso(t: dt.time) -> str:
    return t.isoformat(timespec="minutes" if not t.second and not t.microsecond else "auto")


def _clean_date_parts(f: Field, parts: dict) -> tuple[Any, str | None]:
    """GOV.UK date input: <key>-day, <key>-month, <key>-year (and <key>-time for datetime)."""
    values = {p: str(parts.get(p) or "").strip() for p in ("day", "month", "year")}
    lacking = [p for p in ("day", "month", "year") if not values[p]]
    if len(lacking) == 3 and not str(parts.get("time") or "").strip():
        return (None, _required_message(f)) if f.is_required else (None, None)
    if lacking:
        named = lacking[0] if len(lacking) == 1 else ", ".join(lacking[:-1]) + " and " + lacking[-1]
        return None, f"{_subject(f)} must include a {named}"
    if not all(v.isdigit() for v in values.values()):
        return None, f"{_subject(f)} must be a real date"
    if len(values["year"]) != 4:
        return None, f"Year of {_phrase(f)} must include 4 numbers"
    try:
        day = dt.date(int(values["year"]), int(values["month"]), int(values["day"]))
    except ValueError:
        return None, f"{_subject(f)} must be a real date"
    if f.subtype != "datetime":
        return day.isoformat(), None
    time_text = str(parts.get("time") or "").strip()
    if not time_text:
        return None, f"{_subject(f)} must include a time"
    if not re.fullmatch(r"\d{1,2}:\d{2}", time_text):
        return None, f"{_subject(f)} must be a real time, like 14:30"
    hour, minute = (int(x) for x in time_text.split(":"))
    if hour > 23 or minute > 59:
        return None, f"{_subject(f)} must be a real time, like 14:30"
    return dt.datetime.combine(day, dt.time(hour, minute)).isoformat(), None


# --------------------------------------------------------------------------- messages

def _phrase(f: Field) -> str:
    """The label as it reads inside a sentence: 'Weeks open?' -> 'weeks open'."""
    text = f.label.strip().rstrip("?:.").strip() or f.key
    first = text.split(" ", 1)[0]
    if first != "I" and not (len(first) > 1 and first[1].isupper()):
        text = text[0].lower() + text[1:]
    return text


def _subject(f: Field) -> str:
    """The label at the start of a sentence: 'Weeks open must be ...'."""
    text = _phrase(f)
    return text[0].upper() + text[1:]


def _required_message(f: Field) -> str:
    if f.required_message:
        return f.required_message
    if f.type == "boolean":
        return f"Select {_phrase(f)}" if f.required_means_true else f"Select whether {_phrase(f)}"
    if f.type in CHOICE_TYPES:
        return f"Select {_phrase(f)}"
    return f"Enter {_phrase(f)}"
