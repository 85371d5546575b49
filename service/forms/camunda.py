"""Read SpiffWorkflow's parsed camunda:formData (``task_spec.form``) into a FormDefinition."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.camunda.specs.user_task import EnumFormField, Form, FormField

from .definition import _check_key, _check_unique_options, _convert_default, _label_from_key, _Problems, _set_limits
from .model import Field, FormDefinition, FormDefinitionError, Option

_CAMUNDA_TYPES = {"string": "text", "long": "number", "boolean": "boolean", "date": "date", "enum": "select"}
_WIDGETS = {"text": {"textarea"}, "select": {"radio", "checklist"}}


def form_from_camunda(form: Any, element_id: str) -> FormDefinition | None:
    """Build a FormDefinition from SpiffWorkflow's ``task_spec.form`` (camunda:formData).

    Returns None when the form has no fields. Raises FormDefinitionError for unsupported types,
    constraints or widgets, bad constraint values, missing or duplicate ids and bad defaults.
    CamundaParser 3.2 only reads formData on user tasks; for a start event use
    ``form_from_camunda(camunda_form_of(start_event_element), start_event_id)``.
    """
    fields = list(getattr(form, "fields", None) or [])
    if not fields:
        return None
    problems, seen, built = _Problems(), set(), []
    for index, ff in enumerate(fields):
        f = _camunda_field(ff, index, problems)
        if f is not None:
            _check_key(f.key, seen, problems)
            built.append(f)
    if problems:
        raise FormDefinitionError(list(problems), element_id)
    return FormDefinition(id=element_id, title=None, components=built)


_CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"


def camunda_form_of(element: Any) -> Form:
    """Read ``camunda:formData`` from an lxml BPMN element (e.g. a startEvent) the way
    SpiffWorkflow's UserTaskParser does for user tasks, returning a SpiffWorkflow ``Form``."""
    c = "{%s}" % _CAMUNDA_NS
    form = Form()
    form.key = element.get(f"{c}formKey")
    for xml_field in element.iterfind(f".//{c}formData/{c}formField"):
        field = EnumFormField() if xml_field.get("type") == "enum" else FormField()
        field.id, field.type = xml_field.get("id"), xml_field.get("type")
        field.label, field.default_value = xml_field.get("label"), xml_field.get("defaultValue")
        for child in xml_field:
            if child.tag == f"{c}properties":
                for p in child.iterfind(f"{c}property"):
                    field.add_property(p.get("id"), p.get("value"))
            elif child.tag == f"{c}validation":
                for v in child.iterfind(f"{c}constraint"):
                    field.add_validation(v.get("name"), v.get("config"))
            elif child.tag == f"{c}value" and isinstance(field, EnumFormField):
                field.add_option(child.get("id"), child.get("name"))
        form.add_field(field)
    return form


def _camunda_field(ff: Any, index: int, problems: _Problems) -> Field | None:
    key = ff.id
    if not key:
        problems.add(f"form field {index + 1}", "has no id")
        return None
    ftype = _CAMUNDA_TYPES.get(ff.type)
    if ftype is None:
        problems.add(key, f"type '{ff.type}' is not supported (use string, long, boolean, date or enum)")
        return None
    props = {p.id: p.value for p in ff.properties}
    widget = props.get("widget")
    if widget:
        if widget not in _WIDGETS.get(ftype, set()):
            problems.add(key, f"widget '{widget}' cannot be used on a {ff.type} field")
        else:
            ftype = widget
    f = Field(key=key, label=ff.label or _label_from_key(key), type=ftype, description=props.get("description"),
              subtype="date" if ftype == "date" else None, integer=ff.type == "long",
              required_message=props.get("required_message"),
              allocate_role=props.get("allocate_role") if ftype in ("text", "select") else None,
              check_answers=str(props.get("check_answers", "")).strip().lower() == "true")
    if ff.type == "enum":
        f.options = [Option(value=o.id, label=o.name or o.id) for o in ff.options]
        if not f.options:
            problems.add(key, "has no options: add at least one value")
        _check_unique_options(f.options, key, problems)
    limits = {}
    for v in ff.validation:
        # Spiff's has_validation() is False for <constraint name="required"/> (config None),
        # so read the list directly. Presence means on, unless config says "false".
        on = str(v.config).strip().lower() != "false"
        if v.name == "required":
            f.required = on
        elif v.name == "readonly":
            f.readonly = on
        elif v.name in ("min", "max", "minlength", "maxlength"):
            limits[v.name] = v.config
        else:
            problems.add(key, f"constraint '{v.name}' is not supported")
    _set_limits(f, limits.get("min"), limits.get("max"), limits.get("minlength"),
                limits.get("maxlength"), problems)
    f.default = _convert_default(f, ff.default_value, problems)
    return f
