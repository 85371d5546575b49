"""Helpers shared by the two form readers: problems, keys, limits, patterns, defaults."""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import replace
from typing import Any

import re2

from .model import Field, Option
from .validation import _clean_value, _parse_number_text, _tidy, compile_pattern


class _Problems(list):
    def add(self, element: str, message: str) -> None:
        self.append((element, message))


def _label_from_key(key: str) -> str:
    """A readable label when none was authored: 'weeks_open' or 'weeksOpen' -> 'Weeks open'."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ").split()
    return " ".join(words).capitalize() if words else key


def _check_key(key: str, seen: set, problems: _Problems) -> None:
    if not key.isidentifier() or keyword.iskeyword(key):
        problems.add(key, "key must be a variable name: letters, digits and underscores, not starting with a digit")
    if key in seen:
        problems.add(key, "key is used by more than one field")
    seen.add(key)


def _check_unique_options(options: list[Option], key: str, problems: _Problems) -> None:
    values = [str(o.value) for o in options]
    if len(set(values)) != len(values):
        problems.add(key, "two options have the same value")


def _number(raw: Any) -> int | float | None:
    """A definition-time number from JSON or an XML string; None if it is not one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return _tidy(raw) if math.isfinite(raw) else None
    if isinstance(raw, str):
        return _parse_number_text(raw)
    return None


def _set_limits(f: Field, lo: Any, hi: Any, min_len: Any, max_len: Any, problems: _Problems) -> None:
    for name, raw in (("min", lo), ("max", hi)):
        if raw in (None, ""):
            continue
        value = _number(raw)
        if f.type != "number":
            problems.add(f.key, f"{name} applies only to number fields")
        elif value is None:
            problems.add(f.key, f"{name} '{raw}' is not a number")
        else:
            setattr(f, name, value)
    for name, raw in (("min_length", min_len), ("max_length", max_len)):
        if raw in (None, ""):
            continue
        value = _number(raw)
        if f.type not in ("text", "textarea"):
            problems.add(f.key, f"{name.replace('_', ' ')} applies only to text fields")
        elif not isinstance(value, int) or value < 0:
            problems.add(f.key, f"{name.replace('_', ' ')} '{raw}' is not a whole number")
        else:
            setattr(f, name, value)


def _set_pattern(f: Field, pattern: Any, vtype: Any, problems: _Problems) -> None:
    if vtype in ("email", "phone"):
        f.validation_type = vtype
    elif vtype not in (None, "", "custom"):
        problems.add(f.key, f"validation type '{vtype}' is not supported (use email or phone)")
    if pattern:
        try:
            compile_pattern(pattern)
            f.pattern = pattern
        except (re2.error, TypeError) as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            problems.add(f.key, f"pattern is not a valid regular expression here ({reason}); patterns are checked "
                                "in linear time, so look-arounds and back-references are not supported")
    if (f.pattern or f.validation_type) and f.type not in ("text", "textarea"):
        problems.add(f.key, "pattern and validation type apply only to text fields")


def _convert_default(f: Field, raw: Any, problems: _Problems) -> Any:
    """Convert an authored default to the value a submission would produce (None if unset)."""
    if raw is None or raw == "" or raw == []:
        return None
    if f.type == "date" and f.subtype == "date" and isinstance(raw, str):
        day = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", raw.strip())  # Camunda 7's dd/MM/yyyy
        if day:
            raw = f"{day[3]}-{int(day[2]):02d}-{int(day[1]):02d}"
    # formData defaults are XML strings, so read strings the way a form post is read
    value, error = _clean_value(replace(f, required=False), raw, "html" if isinstance(raw, str) else "json")
    if error:
        problems.add(f.key, f"default value {raw!r} is not valid for this field: {error}")
        return None
    return value
