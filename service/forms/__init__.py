"""User-task form definitions and their server-side validation.

A form comes from one of two places and ends up as the same :class:`FormDefinition`:

* a Camunda Forms ``.form`` file (form-js JSON, schemaVersion 16, as Camunda Modeler 5 writes it),
  read by :func:`form_from_formjs`;
* ``camunda:formData`` on a BPMN user task, which SpiffWorkflow's ``CamundaParser`` turns into
  ``task_spec.form``, read by :func:`form_from_camunda`. SpiffWorkflow 3.2 does not read formData on
  start events: :func:`camunda_form_of` reads it from the lxml element instead.

:func:`validate_submission` checks what a case worker (HTML form post) or a REST client (JSON) sent
and returns ``(cleaned, errors)``; it never raises for bad input.

Rules worth knowing (they are deliberate):

* ``required`` on a boolean: a form-js **checkbox** that is required must be ticked (form-js
  semantics); a formData **boolean** that is required must be answered, true or false (Camunda
  semantics). For ``source="html"`` an absent checkbox means False, except for a required formData
  boolean, where absent means "not answered": render those as Yes/No radios (values true/false).
* A field with ``conditional.hide`` (``hide_if``, FEEL) is evaluated on the server over what the case
  knows and the answers given: a hidden field is neither required nor returned (nor stored); a
  condition that cannot be evaluated shows the field.
* ``readonly``/``disabled`` fields are neither validated nor returned.
* Every other field key is returned; a missing optional value is ``None`` (a checklist is ``[]``,
  an HTML checkbox is ``False``). Keys the form does not define are dropped.
* Strings are stripped of surrounding white space; an empty string counts as missing.
* Field keys must be Python identifiers: they become process variables used in gateway conditions.
"""


from .camunda import camunda_form_of, form_from_camunda
from .formjs import form_from_formjs
from .model import (
    CHOICE_TYPES, FIELD_TYPES, Component, Field, FormDefinition, FormDefinitionError, Group, Option, Text,
    form_to_api,
)
from .validation import validate_submission

__all__ = [
    "Field", "Option", "Text", "Group", "Component", "FormDefinition", "FormDefinitionError",
    "form_from_formjs", "form_from_camunda", "camunda_form_of", "validate_submission", "form_to_api",
    "FIELD_TYPES", "CHOICE_TYPES",
]
