"""Pages: start a referral, find a case, "My cases" and "Team cases", a family with its chronology.

Registered on the same blueprint as ``service.web.views``. Every page calls the service layer
(``service.cases``, ``service.families``); who may see or start what is ``service.policy``'s.

Starting a referral is four steps on one URL, each a form post carrying the earlier answers as hidden
fields (nothing personal is kept in the session cookie, which is signed, not encrypted): the child (with
likely duplicates to pick from), the pathway's start form, "Check your answers", then the case starts and
a confirmation says who has it now.
"""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_required

from service import cases as case_service
from service import families as family_service
from service import paging
from service.deployments import get_process, process_definition
from service.errors import InvalidData
from service.forms import validate_submission
from service.models import db
from service.web import formview
from service.web.filters import london_date
from service.web.views import bp

PER_PAGE = 25
CHILD_INPUTS = ("given_name", "family_name", "date_of_birth-day", "date_of_birth-month", "date_of_birth-year",
                "nhs_number", "council_number", "match")
CONTROL = ("csrf_token", "step", "goto", "action")
STATUSES = {"active": "Active", "completed": "Completed", "error": "Stopped on an error", "cancelled": "Cancelled"}


# -- start a referral ------------------------------------------------------------------------------

def _first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    if not text:
        return ""
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


@bp.route("/start")
@login_required
def start_referral():
    """The pathways the worker's roles may start, in plain words, grouped by council."""
    actor = current_user.actor
    pathways = [{"key": v.key, "name": v.name, "about": _first_sentence(p.documentation)}
                for v, p in case_service.startable_pathways(db.session, actor)]
    return render_template("start_pathways.html", pathways=pathways, council=current_user.council)


def _child_raw(form) -> dict[str, Any]:
    return {"given_name": form.get("given_name", ""), "family_name": form.get("family_name", ""),
            "date_of_birth": {p: form.get(f"date_of_birth-{p}", "") for p in ("day", "month", "year")},
            "nhs_number": form.get("nhs_number", ""), "council_number": form.get("council_number", "")}


def _carried(exclude: tuple[str, ...]) -> list[tuple[str, str]]:
    """What the earlier steps posted, to post again as hidden fields (all but this step's own inputs)."""
    return [(k, v) for k, v in request.form.items(multi=True) if k not in CONTROL and k not in exclude]


def _subject(match: str, child: dict[str, Any]) -> dict[str, Any]:
    """start_case's keywords for the worker's choice: an existing child, a new child of a known family, or new."""
    kind, _, ident = match.partition(":")
    if kind == "child" and ident.isdigit():
        return {"child_id": int(ident)}
    if kind == "family" and ident.isdigit():
        return {"child": child, "family_id": int(ident)}
    return {"child": child}


@bp.route("/start/<string:key>", methods=["GET", "POST"])
@login_required
def start_steps(key: str):
    actor = current_user.actor
    version = get_process(db.session, key)
    process = process_definition(db.session, version)
    if key not in {v.key for v, _ in case_service.startable_pathways(db.session, actor)}:
        return _start_forbidden(version)
    page = {"key": key, "pathway": version.name}
    if request.method == "GET":
        return _child_step(page, {})
    goto = request.form.get("goto")
    step = goto or request.form.get("step", "child")
    if goto == "child":
        return _child_step(page, {})
    if goto == "form":
        return _form_step(page, process, {})
    if step == "child":
        return _after_child(page, process)
    if step == "form":
        return _after_form(page, process)
    if step == "check":
        return _start(page, process)
    return _child_step(page, {})


def _start_forbidden(version):
    from service.web.views import error_page

    return error_page(403, f"Your roles cannot start a referral to {version.name}.")


def _child_step(page, errors: dict[str, str], duplicates=None, status: int = 200):
    raw = _child_raw(request.form)
    error_list = [{"text": message, "href": "#" + key.removeprefix("child.").replace("date_of_birth", "date_of_birth-day")}
                  for key, message in errors.items()]
    choices = []
    for person in duplicates or []:
        born = london_date(family_service.parse_date(person.date_of_birth)) if person.date_of_birth else "date of birth not known"
        family = person.family.name or f"family {person.family_id}"
        choices.append({"value": f"child:{person.id}",
                        "text": f"Yes, it is {person.given_name} {person.family_name}, born {born} ({family})"})
        choices.append({"value": f"family:{person.family_id}",
                        "text": f"No, a different child in the same family ({family})"})
    if duplicates:
        choices.append({"value": "new", "text": "No, a new child in a new family"})
    return render_template("start_child.html", page=page, child=raw, errors=errors, error_list=error_list,
                           choices=list({c["value"]: c for c in choices}.values()),
                           carried=_carried(CHILD_INPUTS)), status


def _after_child(page, process):
    raw = _child_raw(request.form)
    try:
        child = family_service.clean_child(raw)
    except InvalidData as invalid:
        return _child_step(page, invalid.errors, status=422)
    match = request.form.get("match", "")
    duplicates = family_service.likely_duplicates(db.session, current_user.actor, child)
    if duplicates and not match:
        return _child_step(page, {}, duplicates)
    if match and match != "new" and match.partition(":")[2] not in {
            str(i) for p in duplicates for i in (p.id, p.family_id)}:
        return _child_step(page, {"match": "Choose whether this is a child already known"}, duplicates, 422)
    return _form_step(page, process, {})


def _form_fields(process) -> tuple[str, ...]:
    if process.start_form is None:
        return ("reference",)
    names = ["reference"]
    for f in process.start_form.fields:
        names += [f.key, f"{f.key}-day", f"{f.key}-month", f"{f.key}-year", f"{f.key}-time"]
    return tuple(names)


def _form_step(page, process, errors: dict[str, str], status: int = 200):
    form = process.start_form
    values = formview.raw_from_post(form, request.form) if form else {}
    if form and not any(k in request.form for k in _form_fields(process)[1:]):
        values = formview.initial_values(form, {}, None)
    error_list = ([{"text": errors["reference"], "href": "#reference"}] if "reference" in errors else []) + (
        formview.error_list(form, {k: v for k, v in errors.items() if k != "reference"}) if form else [])
    return render_template("start_form.html", page=page, items=formview.items(form, values, errors) if form else [],
                           reference=request.form.get("reference", ""), errors=errors, error_list=error_list,
                           carried=_carried(_form_fields(process))), status


def _answers(form, cleaned: dict[str, Any]) -> list[dict[str, str]]:
    """The start form's answers as the worker reads them: the field's label and the option's label."""
    return formview.answer_rows(form, cleaned)


def _after_form(page, process):
    form = process.start_form
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    if form is not None:
        cleaned, errors = validate_submission(form, request.form, source="html")
    reference = request.form.get("reference", "").strip()
    if not reference or len(reference) > case_service.MAX_REFERENCE:
        errors["reference"] = f"Enter the council's case number (at most {case_service.MAX_REFERENCE} characters)"
    if errors:
        return _form_step(page, process, errors, 422)
    child = family_service.clean_child(_child_raw(request.form))
    match = request.form.get("match", "") or "new"
    subject = _subject(match, child)
    if "child_id" in subject:
        person = family_service.get_person(db.session, subject["child_id"], current_user.actor)
        family = f"{person.family.name or 'Family ' + str(person.family_id)} (already known)"
        child_rows = [("Child", f"{person.given_name} {person.family_name} (already known)"),
                      ("Date of birth", _born(person.date_of_birth))]
    else:
        known = family_service.get_family(db.session, subject["family_id"], current_user.actor) \
            if "family_id" in subject else None
        family = f"{known.name} (already known)" if known else "A new family"
        child_rows = [("Child", f"{child['given_name']} {child['family_name']}"),
                      ("Date of birth", _born(child["date_of_birth"])),
                      ("NHS number", child["nhs_number"] or "Not given"),
                      ("Council number", child["council_number"] or "Not given")]
    return render_template("start_check.html", page=page, child_rows=child_rows, family=family,
                           reference=reference, answers=_answers(form, cleaned), carried=_carried(()))


@bp.app_template_global("born")
def _born(iso: str | None) -> str:
    """An ISO date of birth as people read it: '9 March 2015'."""
    parsed = family_service.parse_date(iso) if iso else None
    return london_date(parsed) if parsed else "Not known"


def _start(page, process):
    actor = current_user.actor
    child = family_service.clean_child(_child_raw(request.form))
    subject = _subject(request.form.get("match", "") or "new", child)
    try:
        answers = request.form if process.start_form is not None else {}  # no start form: no answers
        case = case_service.start_case(db.session, page["key"], request.form.get("reference", ""), answers,
                                       actor, source="html", **subject)
    except InvalidData as invalid:
        db.session.rollback()
        if any(k.startswith("child") for k in invalid.errors):
            return _child_step(page, invalid.errors, status=422)
        return _form_step(page, process, invalid.errors, 422)
    case_id = case.id
    case_service.commit(db.session)
    return redirect(url_for("web.referral_started", case_id=case_id))


@bp.route("/cases/<int:case_id>/started")
@login_required
def referral_started(case_id: int):
    """The confirmation: the reference, who has the case now and what happens next."""
    case = case_service.get_case(db.session, case_id, current_user.actor, purpose="case_page")
    case_service.commit(db.session)  # the access log's line
    first = case.tasks[0] if case.tasks else None
    return render_template("start_done.html", case=case, task=first)


# -- finding cases ---------------------------------------------------------------------------------

def _case_list(title: str, *, mine: bool = False, search: bool = False):
    actor = current_user.actor
    args = request.args
    q = args.get("q", "").strip()[:200]
    process = args.get("process") or None
    status = args.get("status") if args.get("status") in STATUSES else None
    overdue = args.get("overdue") == "true"
    try:
        page = max(1, min(int(args.get("page", 1)), 100_000))
    except ValueError:
        page = 1
    pathways = case_service.visible_pathways(db.session, actor)
    if process not in {v.key for v in pathways}:
        process = None
    show = not search or bool(q)
    errors: dict[str, str] = {}
    try:
        rows, total = case_service.list_cases(db.session, actor, q=q or None, process=process, status=status,
                                              overdue=overdue, mine=mine, page=page, per_page=PER_PAGE) \
            if show else ([], 0)
    except family_service.TooManyMatches as refused:  # said on the search box, as a form's error
        errors, show, rows, total = refused.errors, False, [], 0
    pages, uncounted = paging.pages_of(total, page, len(rows), PER_PAGE)
    query = {k: v for k, v in (("q", q), ("process", process), ("status", status),
                               ("overdue", "true" if overdue else None)) if v}
    return render_template("cases_list.html", title=title, rows=rows, total=total, page=page, pages=pages,
                           uncounted=uncounted, errors=errors,
                           error_list=[{"text": text, "href": f"#{field}"} for field, text in errors.items()],
                           query=query, q=q, search=search, shown=show, endpoint=request.endpoint,
                           pathways=pathways, process=process, status=status,
                           overdue=overdue, statuses=STATUSES), 422 if errors else 200


@bp.route("/cases")
@login_required
def find_case():
    """Find a case: a child's name (part of, any case), date of birth, NHS or council number, or a reference."""
    return _case_list("Find a case", search=True)


@bp.route("/cases/mine")
@login_required
def my_cases():
    """Cases where I hold or held a task, or which I started."""
    return _case_list("My cases", mine=True)


@bp.route("/cases/team")
@login_required
def team_cases():
    """Cases of the pathways my roles belong to."""
    return _case_list("Team cases")


# -- a family ----------------------------------------------------------------------------------------

@bp.route("/families/<int:family_id>")
@login_required
def family(family_id: int):
    """A family: its children, all its cases over time (hand-overs included), and its chronology."""
    actor = current_user.actor
    found = family_service.get_family(db.session, family_id, actor)
    cases = family_service.family_cases(db.session, found, actor)
    args = request.args
    kinds = [k for k in args.getlist("kind") if k in family_service.KINDS]
    case_filter = args.get("case", type=int)
    since = family_service.parse_date(args.get("since", "")) if args.get("since") else None
    until = family_service.parse_date(args.get("until", "")) if args.get("until") else None
    errors = {}
    if args.get("since") and since is None:
        errors["since"] = "Enter a real date, like 4/1/2027"
    if args.get("until") and until is None:
        errors["until"] = "Enter a real date, like 4/1/2027"
    entries = family_service.chronology(db.session, found, actor, {"kinds": set(kinds), "case_id": case_filter,
                                                                   "since": since, "until": until})
    case_service.commit(db.session)  # the access log's lines
    by_id = {c.id: c for c in cases}
    return render_template("family.html", family=found, cases=cases, by_id=by_id, entries=entries,
                           kinds=family_service.KINDS, chosen=kinds, case_filter=case_filter,
                           since=args.get("since", ""), until=args.get("until", ""), errors=errors,
                           error_list=[{"text": m, "href": f"#{k}"} for k, m in errors.items()])
