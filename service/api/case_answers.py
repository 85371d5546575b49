"""GET /cases/<id>/answers: what a case is about, in the words the pages use (``service.case_view``)."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from service import case_view
from service import cases as case_service
from service.models import db

from .access import authenticate

blp = Blueprint("case_answers", __name__, description="A case in plain words")
blp.before_request(authenticate)


@blp.route("/cases/<int:case_id>/answers")
@blp.response(200)
def case_answers(case_id: int):
    """The child, why the case is here, its linked cases (with outcomes) and every answer so far, grouped by
    the step that gave it, with the form's label and the option's label beside each stored value."""
    case = case_service.get_case(db.session, case_id, g.actor, purpose="case")
    case_service.commit(db.session)  # the access log's line
    links = case_view.linked_cases(db.session, case, g.actor)
    child = case_view.child_of(case)
    origin = case_view.origin(db.session, case, links)
    return {
        "case_id": case.id, "reference": case.reference,
        "child": {"name": child.name, "family_name": child.family_name,
                  "date_of_birth": child.date_of_birth.isoformat() if child.date_of_birth else None,
                  "age": child.age} if child else None,
        "why": {"pathway": origin.pathway, "started_by": origin.started_by,
                "started_at": origin.started_at.isoformat(),
                "handed_over_from": origin.handed_over_from.case_id
                if origin.handed_over_from and origin.handed_over_from.visible else None},
        "linked_cases": case_view.linked_json(links),
        "answers": case_view.answers_json(case_view.answer_groups(db.session, case)),
    }
