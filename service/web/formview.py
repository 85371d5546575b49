"""A task's FormDefinition as GOV.UK components, with what the worker typed kept.

Values travel in their *raw* form, as a form post has them: text as str, a checkbox or Yes/No as
"true"/"false", a checklist as a list of str, a date as {"day", "month", "year"(, "time")}. A draft is
saved in this shape (``service.cases.save_draft``), so a half-filled form comes back exactly as left;
validation is only ever ``service.cases.complete_task`` (``validate_submission``) on the server.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from datetime import date, datetime
from typing import Any

from markupsafe import Markup

from service.forms import Field, FormDefinition, Group, Text
from service.forms.conditions import browser_condition
from service.web.filters import guidance, london_date, show_value

DATE_PARTS = ("day", "month", "year")


def is_yes_no(f: Field) -> bool:
    """A required formData boolean must be answered true or false: Yes/No radios, not a checkbox."""
    return f.type == "boolean" and f.is_required and not f.required_means_true


def anchor(f: Field) -> str:
    """The id of the first input of a field, for the error summary's links."""
    if f.type == "date" and f.subtype in ("date", "datetime"):
        return f"{f.key}-day"
    return f.key


def error_anchor(f: Field, message: str) -> str:
    """Where an error's link goes: a date and time's time input when the time is what is wrong."""
    if f.type == "date" and f.subtype == "datetime" and "time" in message.split(f.label, 1)[-1]:
        return f"{f.key}-time"
    return anchor(f)


# -- raw values --------------------------------------------------------------------------------

def raw_from_post(form: FormDefinition, post) -> dict[str, Any]:
    """What the worker sent, per field key, in raw form (a werkzeug MultiDict)."""
    raw: dict[str, Any] = {}
    for f in form.fields:
        if f.readonly:
            continue
        if f.type == "checklist":
            raw[f.key] = [v for v in post.getlist(f.key) if v]
        elif f.type == "date" and f.subtype in ("date", "datetime"):
            names = DATE_PARTS + (("time",) if f.subtype == "datetime" else ())
            raw[f.key] = {p: post.get(f"{f.key}-{p}", "") for p in names}
        else:
            values = post.getlist(f.key)
            raw[f.key] = values[-1] if values else ""
    return raw


def raw_from_value(f: Field, value: Any) -> Any:
    """A typed value (a default, case data, a draft) in raw form."""
    if value is None:
        return None
    if f.type == "checklist":
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if f.type == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if f.type == "date" and f.subtype in ("date", "datetime"):
        if isinstance(value, dict):
            return {k: str(v) for k, v in value.items() if isinstance(v, (str, int))}
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        text = str(value)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return {"day": "", "month": "", "year": ""}
        parts = {"day": str(moment.day), "month": str(moment.month), "year": str(moment.year)}
        if f.subtype == "datetime":
            parts["time"] = f"{moment:%H:%M}"
        return parts
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else str(value)


def initial_values(form: FormDefinition, case_data: dict[str, Any], draft: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, then what the case already knows under the same names, then the saved draft."""
    values: dict[str, Any] = {}
    for f in form.fields:
        for source in (f.default, case_data.get(f.key), (draft or {}).get(f.key)):
            raw = raw_from_value(f, source)
            if raw is not None:
                values[f.key] = raw
    return values


def answer_rows(form: FormDefinition | None, cleaned: dict[str, Any]) -> list[dict[str, str]]:
    """Validated answers as the worker reads them (the field's label, the option's label, a date in words),
    for a "Check your answers" page: ``key``, ``anchor`` (the input a Change link goes to), ``label``, ``value``."""
    from service.families import parse_date  # the service layer's date reading (imported late: no cycle)

    rows = []
    for f in form.fields if form else []:
        if f.readonly or f.key not in cleaned:
            continue
        value = cleaned[f.key]
        labels = {str(o.value): o.label for o in (f.options or [])}
        if isinstance(value, list):
            shown = ", ".join(labels.get(str(v), str(v)) for v in value) or "None"
        elif labels and value is not None:
            shown = labels.get(str(value), str(value))
        elif f.type == "date" and value:
            parsed = parse_date(str(value)[:10])
            shown = london_date(parsed) + (f", {str(value)[11:16]}" if f.subtype == "datetime" else "") \
                if parsed else str(value)
        else:
            shown = show_value(value)
        rows.append({"key": f.key, "anchor": anchor(f), "label": f.label, "value": shown})
    return rows


# -- components for the templates --------------------------------------------------------------

@dataclass
class Item:
    """One thing on the form: ``kind`` picks the macro in task.html; ``params`` are the macro's."""

    kind: str
    params: dict[str, Any] = dc_field(default_factory=dict)
    children: list[Item] = dc_field(default_factory=list)
    html: Markup | None = None
    #: A simple ``conditional.hide`` as data attributes for static/js/conditional.js (None: always shown
    #: in the browser; the server decides either way).
    hide: dict[str, str] | None = None


def items(form: FormDefinition, values: dict[str, Any], errors: dict[str, str]) -> list[Item]:
    return [_item(c, values, errors) for c in form.components]


def error_list(form: FormDefinition, errors: dict[str, str]) -> list[dict[str, str]]:
    """The error summary's entries, in the order of the fields on the page."""
    listed = [{"text": errors[f.key], "href": f"#{error_anchor(f, errors[f.key])}"} for f in form.fields
              if f.key in errors]
    known = {f.key for f in form.fields}
    listed += [{"text": message, "href": "#main-content"} for key, message in errors.items() if key not in known]
    return listed


def _item(component, values, errors) -> Item:
    if isinstance(component, Text):
        return Item("html", html=guidance(component.markdown))
    if isinstance(component, Group):
        return Item("group", {"legend": component.label},
                    children=[_item(c, values, errors) for c in component.components])
    item = _field(component, values.get(component.key), errors.get(component.key))
    item.hide = browser_condition(component.hide_if)
    return item


def _hint(f: Field, extra: str | None = None) -> dict[str, str] | None:
    text = " ".join(t for t in (f.description, extra) if t)
    return {"text": text} if text else None


def _error(message: str | None) -> dict[str, str] | None:
    return {"text": message} if message else None


def _label(f: Field, optional: bool = True) -> str:
    return f.label if (f.is_required or not optional or f.type == "boolean") else f"{f.label} (optional)"


def _field(f: Field, raw: Any, error: str | None) -> Item:
    common = {"errorMessage": _error(error), "hint": _hint(f)}
    if f.readonly:
        return Item("readonly", {"label": f.label, "value": show_value(raw) if raw not in (None, "") else "Not given"})
    if f.type in ("text", "number") or (f.type == "date" and f.subtype == "time"):
        params = {**common, "label": {"text": _label(f), "classes": "govuk-label--s"}, "id": f.key, "name": f.key,
                  "value": raw if isinstance(raw, str) else ""}
        if f.type == "number":
            params.update(inputmode="numeric" if f.integer else "decimal", spellcheck=False,
                          classes="govuk-input--width-5")
        elif f.type == "date":
            params.update(classes="govuk-input--width-5", hint=_hint(f, "For example, 14:30"))
        elif f.validation_type == "email":
            params.update(type="email", autocomplete="email", spellcheck=False)
        elif f.validation_type == "phone":
            params.update(type="tel", autocomplete="tel")
        elif f.max_length and f.max_length <= 40:
            params.update(classes="govuk-input--width-20")
        return Item("input", params)
    if f.type == "textarea":
        params = {**common, "label": {"text": _label(f), "classes": "govuk-label--s"}, "id": f.key, "name": f.key,
                  "value": raw if isinstance(raw, str) else "", "rows": 5}
        if f.max_length:
            params["maxlength"] = f.max_length
            return Item("character_count", params)
        return Item("textarea", params)
    if f.type == "boolean":
        if is_yes_no(f):
            return Item("radios", {**common, "idPrefix": f.key, "name": f.key, "classes": "govuk-radios--inline",
                                   "fieldset": _legend(f),
                                   "items": [{"value": "true", "text": "Yes", "checked": raw == "true"},
                                             {"value": "false", "text": "No", "checked": raw == "false"}]})
        return Item("checkboxes", {"errorMessage": _error(error), "idPrefix": f.key, "name": f.key,
                                   "classes": "govuk-checkboxes--small",
                                   "items": [{"value": "true", "text": f.label, "checked": raw == "true",
                                              "hint": _hint(f)}]})
    if f.type == "radio":
        return Item("radios", {**common, "idPrefix": f.key, "name": f.key, "fieldset": _legend(f),
                               "items": [{"value": str(o.value), "text": o.label, "checked": raw == str(o.value)}
                                         for o in f.options]})
    if f.type == "checklist":
        chosen = raw if isinstance(raw, list) else []
        return Item("checkboxes", {**common, "idPrefix": f.key, "name": f.key, "fieldset": _legend(f),
                                   "items": [{"value": str(o.value), "text": o.label, "checked": str(o.value) in chosen}
                                             for o in f.options]})
    if f.type == "select":
        return Item("select", {**common, "id": f.key, "name": f.key,
                               "label": {"text": _label(f), "classes": "govuk-label--s"},
                               "items": [{"value": "", "text": "Choose an option", "selected": not raw}]
                               + [{"value": str(o.value), "text": o.label, "selected": raw == str(o.value)}
                                  for o in f.options]})
    # a date, as GOV.UK's three-field date input (and a time for a date and time)
    parts = raw if isinstance(raw, dict) else {}
    widths = {"day": 2, "month": 2, "year": 4}
    error_class = " govuk-input--error" if error else ""
    date_items = [{"name": p, "label": p.capitalize(), "value": parts.get(p, ""),
                   "classes": f"govuk-input--width-{widths[p]}{error_class}"} for p in DATE_PARTS]
    params = {**common, "id": f.key, "namePrefix": f.key, "fieldset": _legend(f), "items": date_items,
              "hint": _hint(f, "For example, 27 3 2027")}
    if f.subtype == "datetime":
        # the time input's label names its question too, as a screen reader meets it outside the fieldset
        label = f.time_label or Markup('<span class="govuk-visually-hidden">{}: </span>Time').format(f.label)
        return Item("datetime", params, children=[Item("input", {
            "label": {"html" if isinstance(label, Markup) else "text": label, "classes": "govuk-label--s"},
            "id": f"{f.key}-time", "name": f"{f.key}-time", "autocomplete": "off", "spellcheck": False,
            "value": parts.get("time", ""), "classes": f"govuk-input--width-5{error_class}",
            "hint": {"text": "For example, 14:30"}})])
    return Item("date", params)


def _legend(f: Field) -> dict[str, Any]:
    return {"legend": {"text": _label(f), "classes": "govuk-fieldset__legend--s"}}
