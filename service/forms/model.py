"""The form model: fields, options, static text, groups, and the API view of a form."""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any, Union

FIELD_TYPES = ("text", "textarea", "number", "boolean", "date", "select", "radio", "checklist")
CHOICE_TYPES = ("select", "radio", "checklist")


@dataclass
class Option:
    """One choice of a select, radio or checklist field."""
    value: Any
    label: str


@dataclass
class Field:
    """One input. ``type`` is one of FIELD_TYPES; ``subtype`` is date/time/datetime for dates."""
    key: str
    label: str
    type: str
    required: bool = False
    options: list[Option] = dc_field(default_factory=list)
    description: str | None = None
    default: Any = None
    min: int | float | None = None
    max: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    validation_type: str | None = None  # "email" | "phone"
    readonly: bool = False  # readonly or disabled: never accepted from a submission
    hide_if: str | None = None  # FEEL from conditional.hide, as authored ("=consent != \"given\"")
    subtype: str | None = None  # date fields: "date" | "time" | "datetime"
    time_label: str | None = None  # a "datetime" field's time input (form-js timeLabel)
    integer: bool = False  # number fields: whole numbers only (formData long, decimalDigits 0)
    required_means_true: bool = False  # form-js checkbox: required means "must be ticked"
    required_message: str | None = None  # authored override for the "missing" message
    #: An allocation: the answer is a user of the council holding this role (property ``allocate_role``),
    #: chosen from a list of them and checked on the server; that user is given the case's next tasks of
    #: the role (``service.workload``).
    allocate_role: str | None = None
    #: Property ``check_answers`` = ``true`` on any field of a form: the pages show the worker a "Check your
    #: answers" page before the task is completed (a threshold, allocation, decline or closure decision).
    check_answers: bool = False

    @property
    def is_required(self) -> bool:
        """Required as enforced by the server when the field shows (a hidden field never is)."""
        return self.required and not self.readonly


@dataclass
class Text:
    """Static text shown to the user (form-js ``text`` component), not an input."""
    markdown: str


@dataclass
class Group:
    """A container of components (form-js ``group``)."""
    label: str | None
    components: list["Component"] = dc_field(default_factory=list)


Component = Union[Field, Text, Group]


@dataclass
class FormDefinition:
    """A form: its id, an optional title and its components in display order."""
    id: str
    title: str | None = None
    components: list[Component] = dc_field(default_factory=list)

    @property
    def fields(self) -> list[Field]:
        """Every input field, groups flattened, in display order."""
        return list(_walk_fields(self.components))

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)

    @property
    def checks_answers(self) -> bool:
        """The pages ask the worker to check their answers before the task is completed."""
        return any(f.check_answers for f in self.fields)


def _walk_fields(components: list[Component]):
    for c in components:
        if isinstance(c, Field):
            yield c
        elif isinstance(c, Group):
            yield from _walk_fields(c.components)


class FormDefinitionError(Exception):
    """The form itself is wrong. ``problems`` is a list of (element, message)."""

    def __init__(self, problems: list[tuple[str, str]], source: str = ""):
        self.problems = problems
        self.source = source
        text = "; ".join(f"{el}: {msg}" for el, msg in problems)
        super().__init__(f"{source}: {text}" if source else text)


def form_to_api(form: FormDefinition) -> dict:
    """The form's fields for the REST API: key, label, type, required, options."""
    return {"fields": [
        {"key": f.key, "label": f.label, "type": f.type, "required": f.is_required,
         "options": [{"value": o.value, "label": o.label} for o in f.options]}
        for f in form.fields
    ]}
