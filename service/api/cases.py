"""Cases: start one, read it, send it a message, read its history, retry it after an error."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from service import cases as case_service
from service import paging
from service.models import db

from .access import authenticate
from .schemas import (CancelSchema, CaseListSchema, CaseQuerySchema, CaseSchema, DataSchema, HistorySchema,
                      MessageSchema, StartCaseSchema, WaitingSchema, case_answer, case_json, case_list_answer, history_json)

blp = Blueprint("cases", __name__, description="Cases")
blp.before_request(authenticate)


@blp.route("/cases", methods=["POST"])
@blp.arguments(StartCaseSchema())
@blp.response(201, CaseSchema)
def start_case(body):
    """Start a case of a pathway; 422 if the data does not satisfy its start form."""
    case = case_service.start_case(db.session, body["process"], body["reference"], body["data"], g.actor,
                                   child=body["child"], child_id=body["child_id"], family_id=body["family_id"])
    case_service.commit(db.session)
    return case_answer(db.session, case, 201)


@blp.route("/cases")
@blp.arguments(CaseQuerySchema(), location="query")
@blp.response(200, CaseListSchema)
def list_cases(query):
    """The council's cases you may see, those stopped on an error first, then newest, a page at a time.

    ``q`` finds a child's name (parts of, any case), date of birth, NHS or council number, or a reference;
    ``mine`` keeps the cases where you hold or held a task, or which you started; ``overdue`` those with an
    overdue task. ``total`` is how many cases match, over every page."""
    cases, total = case_service.list_cases(db.session, g.actor, status=query.get("status"),
                                           process=query.get("process"), page=query["page"],
                                           per_page=query["per_page"], q=query.get("q"),
                                           reference=query.get("reference"), mine=query["mine"],
                                           overdue=query["overdue"], family_id=query.get("family"),
                                           child_id=query.get("child"), after=query.get("after"))
    more = len(cases) == query["per_page"]
    return case_list_answer(cases, total=total, page=query["page"], per_page=query["per_page"],
                            next=paging.case_cursor(cases[-1]) if more else None)


@blp.route("/cases/<int:case_id>/cancel", methods=["POST"])
@blp.arguments(CancelSchema())
@blp.response(200, CaseSchema)
def cancel_case(body, case_id: int):
    """Cancel a case with the reason (the council's admin): its tasks close, its timers stop; audited."""
    case = case_service.cancel_case(db.session, case_id, body["reason"], g.actor)
    case_service.commit(db.session)
    return case_json(db.session, case)


@blp.route("/cases/<int:case_id>")
@blp.response(200, CaseSchema)
def get_case(case_id: int):
    case = case_service.get_case(db.session, case_id, g.actor, purpose="case")
    case_service.commit(db.session)  # the access log's line
    return case_json(db.session, case)


@blp.route("/cases/<int:case_id>/messages", methods=["POST"])
@blp.arguments(MessageSchema())
@blp.response(200, CaseSchema)
@blp.alt_response(409, schema=WaitingSchema, description="nothing in the case waits for this message")
def send_message(body, case_id: int):
    """Deliver a message (e.g. immediate_risk); 409 if nothing in the case waits for it."""
    case = case_service.send_message(db.session, case_id, body["name"], body["data"], g.actor)
    case_service.commit(db.session)
    return case_json(db.session, case)


@blp.route("/cases/<int:case_id>/retry", methods=["POST"])
@blp.arguments(DataSchema())
@blp.response(200, CaseSchema)
def retry_case(body, case_id: int):
    """Run a case that stopped on an error again, with corrected data."""
    case = case_service.retry(db.session, case_id, body["data"], g.actor)
    case_service.commit(db.session)
    return case_json(db.session, case)


@blp.route("/cases/<int:case_id>/history")
@blp.response(200, HistorySchema(many=True))
def case_history(case_id: int):
    """The audit log of the case: who did what, when."""
    case = case_service.get_case(db.session, case_id, g.actor, purpose="case_history")
    case_service.commit(db.session)  # the access log's line
    return [history_json(e) for e in case_service.history(db.session, case)]


@blp.route("/cases/<int:case_id>/ad-hoc/<string:element>/finish", methods=["POST"])
@blp.response(200, CaseSchema)
@blp.alt_response(409, description="the case is not inside that ad-hoc sub-process")
def finish_ad_hoc(case_id: int, element: str):
    """The activities of the ad-hoc sub-process ``element`` that the worker chose are done: the others are not
    done and the case goes on after it (as when its completion condition holds)."""
    case = case_service.finish_ad_hoc(db.session, case_id, element, g.actor)
    case_service.commit(db.session)
    return case_answer(db.session, case)
