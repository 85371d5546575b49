"""Read a Camunda Forms (form-js) document into a FormDefinition."""

from __future__ import annotations

import json

from .definition import (
    _check_key, _check_unique_options, _convert_default, _label_from_key, _Problems, _set_limits, _set_pattern,
)
from .conditions import syntax_problem
from .model import CHOICE_TYPES, Component, Field, FormDefinition, FormDefinitionError, Group, Option, Text

_FORMJS_TYPES = {
    "textfield": "text", "textarea": "textarea", "number": "number", "checkbox": "boolean",
    "checklist": "checklist", "radio": "radio", "select": "select", "datetime": "date",
    "taglist": "checklist",  # Camunda 8 forms' multi-select with search: the same answer, a list of the values
}
_FORMJS_IGNORED = {"spacer", "separator", "button"}  # layout, and buttons: the page has its own
MAX_GROUP_NESTING = 20  # groups within groups; Camunda Modeler forms rarely go past three


def form_from_formjs(document: dict | str | bytes, filename: str) -> FormDefinition:
    """Build a FormDefinition from a form-js (Camunda Forms) document.

    ``filename`` is only used in error messages. Raises FormDefinitionError listing every problem.
    """
    problems = _Problems()
    if isinstance(document, (str, bytes, bytearray)):
        try:
            document = json.loads(document)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormDefinitionError([(filename, f"is not valid JSON: {exc}")], filename) from None
        except RecursionError:  # the JSON parser gives up on brackets nested thousands deep
            raise FormDefinitionError([(filename, "is nested too deeply to be a form")], filename) from None
    if not isinstance(document, dict):
        raise FormDefinitionError([(filename, "must be a JSON object")], filename)
    form_id = document.get("id")
    if not isinstance(form_id, str) or not form_id.strip():
        problems.add(filename, "has no form id (the 'id' that camunda:formRef names)")
    components = document.get("components")
    if not isinstance(components, list):
        problems.add(filename, "has no 'components' list")
        components = []
    built = _formjs_components(components, problems, seen=set(), where=filename, depth=0)
    if problems:
        raise FormDefinitionError(list(problems), filename)
    return FormDefinition(id=form_id, title=None, components=built)


def _formjs_components(items: list, problems: _Problems, seen: set, where: str, depth: int) -> list[Component]:
    out: list[Component] = []
    if depth > MAX_GROUP_NESTING:
        problems.add(where, f"groups are nested more than {MAX_GROUP_NESTING} deep")
        return out
    for index, comp in enumerate(items):
        if not isinstance(comp, dict):
            problems.add(f"{where} component {index + 1}", "must be a JSON object")
            continue
        ctype = comp.get("type")
        name = str(comp.get("key") or comp.get("id") or f"{where} component {index + 1}")
        if ctype in _FORMJS_IGNORED:
            continue
        if ctype == "text":
            out.append(Text(markdown=str(comp.get("text") or "")))
        elif ctype == "group":
            if comp.get("path"):
                problems.add(name, "groups with a data path are not supported: clear the group's path")
            children = comp.get("components") if isinstance(comp.get("components"), list) else []
            out.append(Group(label=comp.get("label"),
                             components=_formjs_components(children, problems, seen, name, depth + 1)))
        elif ctype in _FORMJS_TYPES:
            built = _formjs_field(comp, _FORMJS_TYPES[ctype], name, problems)
            if built is not None:
                _check_key(built.key, seen, problems)
                out.append(built)
        else:
            problems.add(name, f"component type '{ctype}' is not supported")
    return out


def _formjs_field(comp: dict, ftype: str, name: str, problems: _Problems) -> Field | None:
    key = comp.get("key")
    if not isinstance(key, str) or not key:
        problems.add(name, "input has no key")
        return None
    validate = _obj(comp, "validate")
    readonly = comp.get("readonly", False)
    if isinstance(readonly, str):
        problems.add(key, "a read-only expression (FEEL) is not supported: set Read only to true or false")
    label = comp.get("label")
    subtype = None
    if ftype == "date":
        subtype = comp.get("subtype") or "date"
        if subtype not in ("date", "time", "datetime"):
            problems.add(key, f"datetime subtype '{subtype}' is not supported")
        label = comp.get("timeLabel") if subtype == "time" else comp.get("dateLabel") or label
    props = _obj(comp, "properties")
    hide = _obj(comp, "conditional").get("hide")
    if isinstance(hide, str) and hide.strip() and (problem := syntax_problem(hide)):
        problems.add(key, problem)
    f = Field(
        key=key, label=str(label or _label_from_key(key)), type=ftype, required=bool(validate.get("required")),
        description=comp.get("description") or None,
        readonly=bool(readonly is True or comp.get("disabled") is True),
        hide_if=hide if isinstance(hide, str) and hide.strip() else None, subtype=subtype,
        time_label=str(comp["timeLabel"]) if subtype == "datetime" and comp.get("timeLabel") else None,
        integer=ftype == "number" and comp.get("decimalDigits") == 0,
        required_means_true=ftype == "boolean", required_message=props.get("required_message"),
        allocate_role=props.get("allocate_role") if ftype in ("text", "select") else None,
        check_answers=str(props.get("check_answers", "")).strip().lower() == "true",
    )
    if ftype in CHOICE_TYPES:
        f.options = _formjs_options(comp, key, problems)
    _set_limits(f, validate.get("min"), validate.get("max"), validate.get("minLength"),
                validate.get("maxLength"), problems)
    _set_pattern(f, validate.get("pattern"), validate.get("validationType"), problems)
    f.default = _convert_default(f, comp.get("defaultValue"), problems)
    return f


def _obj(comp: dict, name: str) -> dict:
    """A nested JSON object of a component, or {} when absent or not an object."""
    value = comp.get(name)
    return value if isinstance(value, dict) else {}


def _formjs_options(comp: dict, key: str, problems: _Problems) -> list[Option]:
    if comp.get("valuesKey") or comp.get("valuesExpression"):
        problems.add(key, "options taken from process data (valuesKey or valuesExpression) are not "
                          "supported: list the options in the form instead")
        return []
    values = comp.get("values")
    if not isinstance(values, list) or not values:
        problems.add(key, "has no options: add at least one value")
        return []
    options = []
    for v in values:
        if not isinstance(v, dict) or v.get("value") in (None, ""):
            problems.add(key, "every option needs a value")
            continue
        options.append(Option(value=v["value"], label=str(v.get("label") or v["value"])))
    _check_unique_options(options, key, problems)
    return options
